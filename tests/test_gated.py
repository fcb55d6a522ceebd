"""The gated mean-scale hyperprior: a shut gate reopens, a shut gate costs almost no bits, the loss trains it."""

from __future__ import annotations

import pytest
import torch

from icm_lib.models import create

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kwargs):
    torch.manual_seed(0)
    return create("mbt2018-mean-gated", N=16, M=24, gate_channels=8, **kwargs)


def test_a_closed_gate_still_learns_what_opening_it_would_gain():
    """The gate clamps to [0, 1] forward and passes the gradient straight through, so a shut gate can reopen."""
    model = small()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model.g_a.gate[-1].bias.fill_(-5.0)
    gate = model.g_a.gate_map(x)
    assert gate.abs().max() == 0
    (model(x)["x_hat"] - x).pow(2).mean().backward()
    assert model.g_a.gate[-1].bias.grad.abs().item() > 0


def test_a_closed_gate_codes_the_image_in_almost_no_bits():
    """With the gate shut the latent is all zeros: the file holds the hyper-latent and little else."""
    from icm_lib.bitstream import encode

    model = small()
    with torch.no_grad():
        model.g_a.analysis[-1].weight.mul_(50)  # an untrained latent rounds to zeros almost everywhere
    x = torch.rand(3, 128, 128)
    model.update(force=True)
    model.eval()
    open_bytes = len(encode(model, x))
    with torch.no_grad():
        model.g_a.gate[-1].bias.fill_(-30.0)
    model.update(force=True)
    closed = len(encode(model, x))
    y = model.g_a(x[None])
    assert y.abs().max() < 1e-6 and closed < 0.2 * open_bytes


def test_closing_the_gate_saves_rate_and_the_object_loss_reaches_it():
    """The mechanism the Object-MSE codec learns: opening the gate costs bits everywhere (the rate's gradient on
    the gate's logits is positive), and the loss's gradient reaches the gate network."""
    from icm_lib.losses import ObjectRateDistortionLoss, bits_per_pixel

    model = small()
    with torch.no_grad():
        model.g_a.analysis[-1].weight.mul_(50)
    logits = []

    def keep(module, inputs, output):
        output.retain_grad()
        logits.append(output)

    model.g_a.gate.register_forward_hook(keep)
    x = torch.rand(2, 3, 64, 64)
    model.train()
    out = model(x)
    bits_per_pixel(out["likelihoods"], 2 * 64 * 64).backward()
    assert logits[-1].grad.mean() > 0 and (logits[-1].grad > 0).float().mean() > 0.9
    model.zero_grad()
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., :32] = 1
    ObjectRateDistortionLoss(0.05)(model(x), x, mask)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.g_a.gate.parameters())


def test_a_plain_codecs_weights_load_into_the_gated_codec_with_the_gate_open():
    """Fine-tuning a trained ``mbt2018-mean`` with the gate: its transforms carry over, the gate starts open
    (the latent is the plain codec's), and a gated codec's own weights still load as they are."""
    torch.manual_seed(0)
    plain = create("mbt2018-mean", N=16, M=24)
    gated = small(gate_bias=5.0)  # open wherever the untrained gate's output stays above 1
    gated.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert gated.g_a.gate_map(x).min() == 1.0
        assert torch.equal(gated.g_a(x), plain.g_a(x))
        assert torch.equal(gated.h_s(gated.h_a(gated.g_a(x))), plain.h_s(plain.h_a(plain.g_a(x))))
    again = small(gate_bias=-1.0)
    again.load_state_dict(gated.state_dict())
    assert torch.equal(again.g_a.gate[-1].bias, gated.g_a.gate[-1].bias)
    with pytest.raises(RuntimeError):
        small().load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("g_s.")})
