"""The mean-scale hyperprior with a larger encoder: it grows from a plain codec without changing what it codes."""

from __future__ import annotations

import pytest
import torch

from icm_lib.bitstream import encode, read_header
from icm_lib.models import create

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_looking_plain() -> torch.nn.Module:
    """A plain ``mbt2018-mean`` whose weights are not at their initial values (GDN terms off the diagonal too)."""
    torch.manual_seed(0)
    plain = create("mbt2018-mean", N=16, M=24)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if name.endswith(("bias", "gamma")) and not name.startswith("entropy"):
                p.add_(0.05 * torch.rand_like(p))
    return plain


@pytest.mark.parametrize("growth", [{"N_enc": 24}, {"enc_blocks": 2}, {"N_enc": 32, "enc_blocks": 1}])
def test_a_plain_codec_grows_into_the_larger_encoder_and_codes_as_before(growth):
    """Wider layers and residual blocks start without effect: the latent, the likelihoods and the file are
    the plain codec's, until training moves the new weights."""
    plain = trained_looking_plain().eval()
    torch.manual_seed(1)
    wide = create("mbt2018-mean-wide", N=16, M=24, **growth).eval()
    wide.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(wide.g_a(x), plain.g_a(x), atol=1e-6)
        a, b = plain(x), wide(x)
    assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"], atol=1e-6)
    plain.update(force=True)
    wide.update(force=True)
    image = torch.rand(3, 48, 80)
    files = [encode(codec, image) for codec in (wide, plain)]
    strings = [data[read_header(data)[1] : -4] for data in files]  # the coded strings, without header and CRC
    assert strings[0] == strings[1] and len(strings[0]) > 0
    assert sum(p.numel() for p in wide.g_a.parameters()) > sum(p.numel() for p in plain.g_a.parameters())


def test_the_new_capacity_trains_and_a_grown_codecs_own_weights_load_as_they_are():
    """Every new weight gets a gradient within two steps (the zeroed ones first, then what they read), and a
    grown codec's state dict loads into the same model unchanged (no second growth)."""
    wide = create("mbt2018-mean-wide", N=16, M=24, N_enc=24, enc_blocks=1)
    wide.load_state_dict(trained_looking_plain().state_dict())
    optimizer = torch.optim.Adam(wide.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 64, 64)
    for _ in range(2):
        optimizer.zero_grad()
        (wide(x)["x_hat"] - x).pow(2).mean().backward()
        optimizer.step()
    new_inputs = wide.g_a[2].weight.grad[16:]  # the second convolution's rows for the new channels
    assert new_inputs.abs().sum() > 0 and wide.g_a[-1].weight.grad[:, 16:].abs().sum() > 0
    assert wide.g_a[4].conv1.weight.grad.abs().sum() > 0
    again = create("mbt2018-mean-wide", N=16, M=24, N_enc=24, enc_blocks=1)
    again.load_state_dict(wide.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), wide.state_dict().values()))
    with pytest.raises(RuntimeError):
        again.load_state_dict({k: v for k, v in wide.state_dict().items() if not k.startswith("g_s.")})


def test_a_grown_codec_of_the_measured_size_round_trips_through_a_checkpoint(tmp_path):
    """Building it replaces the plain encoder it was constructed with; the checkpoint loader's guard against
    configs larger than their weights leaves room for that (it refused this codec's resume before)."""
    from icm_lib.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    wide = create("mbt2018-mean-wide", N=64, M=96, N_enc=96, enc_blocks=1)
    save_checkpoint(tmp_path / "c.pt", wide, {"loss": "object", "lmbda": 0.015, "step": 5, "data": "none"})
    loaded, meta, _ = load_checkpoint(tmp_path / "c.pt")
    assert meta["model"] == "mbt2018-mean-wide" and loaded.registry_config["enc_blocks"] == 1
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), wide.state_dict().values()))


def test_the_roi_codec_on_the_larger_encoder_grows_from_a_plain_one_and_gates_as_before():
    """``mbt2018-mean-wide-roi`` takes a plain codec's weights (the ROI codec fine-tuned from a grown one has
    the same encoder), codes the same latents at the same cost until it trains, and the plain ROI codec
    (``N_enc`` unset, no blocks) keeps the plain encoder and its initial weights."""
    from compressai.models import MeanScaleHyperprior

    plain = trained_looking_plain().eval()
    torch.manual_seed(1)
    roi = create("mbt2018-mean-wide-roi", N=16, M=24, N_enc=24, enc_blocks=1).eval()
    roi.load_state_dict(plain.state_dict())
    x, mask = torch.rand(2, 3, 64, 128), torch.zeros(2, 1, 64, 128)
    mask[:, :, 8:40, 70:100] = 1
    with torch.no_grad():
        gated = roi(x, mask)
        assert torch.allclose(roi.g_a(x), plain.g_a(x), atol=1e-6)
    kept = gated["likelihoods"]["y"] < 1
    assert kept.any() and not kept[..., :, :4].any()  # the latents left of the object are not coded
    torch.manual_seed(2)
    small = create("mbt2018-mean-roi", N=16, M=24)
    torch.manual_seed(2)
    assert all(
        torch.equal(a, b)
        for a, b in zip(small.state_dict().values(), MeanScaleHyperprior(16, 24).state_dict().values())
    )
