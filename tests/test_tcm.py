"""TCM against the published implementation: state_dict layout, conformance fixture, official checkpoints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from icm_lib.checkpoint import load_official_tcm
from icm_lib.errors import UserError
from icm_lib.models import create, parameter_count
from icm_lib.models.tcm_layers import WMSA

ASSETS = Path(__file__).resolve().parent / "assets"


pytestmark = pytest.mark.usefixtures("one_thread")


def fill_conformance_weights(model: torch.nn.Module) -> None:
    """The weight-filling recipe of the reference README (seed 20230822, sorted names, quantiles kept)."""
    g = torch.Generator()
    g.manual_seed(20230822)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("quantiles"):
                continue
            if p.dim() >= 2:
                draw = torch.randn(p.shape, generator=g) * (0.5 * p[0].numel() ** -0.5)
            else:
                draw = torch.randn(p.shape, generator=g) * 0.1
                if name.endswith(("weight", "beta")):
                    draw = draw + 1.0
            p.copy_(draw)


@pytest.fixture(scope="module")
def conformance():
    ref = torch.load(ASSETS / "tcm_N64_conformance.pt", weights_only=True)
    model = create("tcm-small")
    fill_conformance_weights(model)
    return model.eval(), ref


@pytest.mark.parametrize("name,key", [("tcm-small", "N64"), ("tcm-medium", "N96"), ("tcm-large", "N128")])
def test_state_dict_matches_published(name, key):
    reference = json.loads((ASSETS / "tcm_state_dict.json").read_text())["sizes"][key]
    model = create(name)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == reference["state_dict"]
    assert parameter_count(model) == reference["parameters"]


def test_forward_reproduces_reference(conformance):
    model, ref = conformance
    with torch.no_grad():
        out = model(ref["input"])
    assert torch.allclose(out["x_hat"], ref["x_hat"], atol=1e-4)
    assert torch.allclose(out["likelihoods"]["y"], ref["likelihoods_y"], atol=1e-4)
    assert torch.allclose(out["likelihoods"]["z"], ref["likelihoods_z"], atol=1e-4)


def test_bitstream_identical_to_reference(conformance):
    model, ref = conformance
    model.update(force=True)
    with torch.no_grad():
        coded = model.compress(ref["input"])
        decoded = model.decompress(coded["strings"], coded["shape"])["x_hat"]
    y, z = coded["strings"][0][0], coded["strings"][1][0]
    assert (len(y), len(z)) == (ref["bytes_y"], ref["bytes_z"])
    assert hashlib.sha256(y).hexdigest() == ref["sha256_y"]
    assert hashlib.sha256(z).hexdigest() == ref["sha256_z"]
    assert torch.allclose(decoded, ref["decoded_x_hat"], atol=1e-4)


def test_any_size_and_batch_round_trip():
    torch.manual_seed(0)
    model = create("tcm-tiny").eval()
    model.update(force=True)
    x = torch.rand(3, 3, 40, 70)
    with torch.no_grad():
        expected = model(x)["x_hat"].clamp(0, 1)
        coded = model.compress(x)
        decoded = model.decompress(coded["strings"], coded["shape"], x_size=x.shape[-2:])["x_hat"]
        single = model.compress(x[1:2])
    assert expected.shape == decoded.shape == x.shape
    assert len(coded["strings"][0]) == 3
    assert coded["strings"][0][1] == single["strings"][0][0]  # batching does not change an image's string
    assert torch.allclose(decoded, expected, atol=1e-5)


@pytest.mark.parametrize("type_", ["W", "SW"])
def test_window_attention_pads_only_what_is_needed(type_):
    torch.manual_seed(0)
    msa = WMSA(16, 16, 8, 4, type_)
    x = torch.randn(2, 8, 12, 16)
    crop = x[:, :6, :10]
    out = msa(crop)
    assert out.shape == (2, 6, 10, 16)
    # a size that is no multiple of the window is zero-padded up to the next one: as if given padded
    padded = torch.nn.functional.pad(crop, (0, 0, 0, 2, 0, 2))
    assert torch.allclose(out, msa(padded)[:, :6, :10], atol=1e-6)
    if type_ == "W":  # attention stays inside each 4x4 window: changing one window leaves the others alone
        changed = x.clone()
        changed[:, :4, :4] += 1.0
        before, after = msa(x), msa(changed)
        assert torch.equal(before[:, 4:], after[:, 4:]) and torch.equal(before[:, :, 4:], after[:, :, 4:])
        assert not torch.allclose(before[:, :4, :4], after[:, :4, :4])


def _old_naming(state: dict) -> dict:
    """A state_dict as saved by the older CompressAI the official checkpoints were made with."""
    renamed = {}
    for key, value in state.items():
        for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            key = key.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{old}")
        renamed[f"module.{key}"] = value
    return renamed


def test_load_official_checkpoint_with_old_key_names(tmp_path):
    torch.manual_seed(1)
    trained = create("tcm-tiny")
    state = {
        k: v
        for k, v in trained.state_dict().items()
        if "_quantized_cdf" not in k and "_offset" not in k and "_cdf_length" not in k and "scale_table" not in k
    }
    assert any("_matrix0" in k for k in _old_naming(state))
    path = tmp_path / "checkpoint_best_loss.pth.tar"
    torch.save({"epoch": 3, "state_dict": _old_naming(state), "optimizer": {"state": {}, "param_groups": []}}, path)
    model = load_official_tcm(path, "tiny")
    for key, value in trained.named_parameters():
        assert torch.equal(dict(model.named_parameters())[key], value), key
    assert model.gaussian_conditional.quantized_cdf.numel() > 0  # ready to code
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        coded = model.compress(x)
    assert len(coded["strings"][0][0]) > 0
    model.train()
    model(x)["x_hat"].mean().backward()  # ready to fine-tune


def test_load_official_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_official_tcm(tmp_path / "missing.pth.tar", "small")
    path = tmp_path / "other.pth.tar"
    torch.save({"state_dict": create("tcm-tiny").state_dict()}, path)
    with pytest.raises(UserError, match="does not fit tcm-small"):
        load_official_tcm(path, "small")
