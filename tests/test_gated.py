"""The gated mean-scale hyperprior: the gate's warm-up, what a closed gate costs, and that the loss trains it."""
from __future__ import annotations

import pytest
import torch

from icm_lib.models import create

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kwargs):
    torch.manual_seed(0)
    return create("mbt2018-mean-gated", N=16, M=24, gate_channels=8, **kwargs)


def test_gate_is_open_during_the_warm_up_and_acts_after_it():
    model = small(gate_warmup=4)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        model.g_a.gate[-1].bias.fill_(-20.0)  # a fully closed gate
        assert torch.allclose(model.g_a.gate_map(x), torch.ones(1, 1, 4, 4))  # no training step yet: open
        model.train()
        for _ in range(2):
            model(x)
        assert model.g_a.trained_steps.item() == 2
        assert torch.allclose(model.g_a.gate_map(x), torch.full((1, 1, 4, 4), 0.5), atol=1e-6)
        for _ in range(5):
            model(x)
        assert model.g_a.gate_map(x).max() < 1e-6  # warm-up over: the gate acts fully
        model.eval()
        model(x)
        assert model.g_a.trained_steps.item() == 7  # eval forwards do not count


def test_a_closed_gate_codes_the_image_in_almost_no_bits():
    """With the gate shut the latent is all zeros: the file holds the hyper-latent and little else."""
    from icm_lib.codec import encode

    model = small(gate_warmup=0)
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

    model = small(gate_warmup=0)
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
