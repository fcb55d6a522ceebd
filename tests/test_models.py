"""Model registry: names, keyword overrides, the `icm models` listing, every model through a file."""

from __future__ import annotations

import pytest
import torch

from icm_lib.bitstream import decode, encode
from icm_lib.checkpoint import load_checkpoint, save_checkpoint
from icm_lib.cli import main
from icm_lib.errors import UserError
from icm_lib.models import available, create, parameter_count, takes_mask

NAMES = [
    "tcm-tiny",
    "tcm-small",
    "tcm-medium",
    "tcm-large",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018-mean-gated",
    "mbt2018-mean-roi",
    "mbt2018-mean-wide",
    "mbt2018-mean-wide-roi",
    "cheng2020-attn",
]
# Small channel counts keep the baselines' round trips quick; the TCM sizes are what they are.
TEST_KWARGS = {
    "bmshj2018-hyperprior": {"N": 16, "M": 24},
    "mbt2018-mean": {"N": 16, "M": 24},
    "mbt2018-mean-gated": {"N": 16, "M": 24, "gate_channels": 8},
    "mbt2018-mean-roi": {"N": 16, "M": 24},
    "mbt2018-mean-wide": {"N": 16, "M": 24, "N_enc": 24, "enc_blocks": 1},
    "mbt2018-mean-wide-roi": {"N": 16, "M": 24, "N_enc": 24, "enc_blocks": 1},
    "cheng2020-attn": {"N": 16},
}
SLOW = {"tcm-small", "tcm-medium", "tcm-large"}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_names():
    assert available() == NAMES


def test_create_overrides_and_unknown_names():
    model = create("mbt2018-mean", N=32, M=48)
    assert model.registry_config == {"N": 32, "M": 48}
    assert model.g_a[0].out_channels == 32
    assert parameter_count(create("tcm-tiny", N=24)) > parameter_count(create("tcm-tiny"))
    with pytest.raises(UserError, match="unknown model"):
        create("tcm-huge")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES])
def test_every_model_round_trips_through_files(tmp_path, name):
    torch.manual_seed(0)
    model = create(name, **TEST_KWARGS.get(name, {}))
    roi = takes_mask(model)  # an ROI codec is given the object mask (here: the left half)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., :32] = 1
    out = model(torch.rand(2, 3, 64, 64), mask) if roi else model(torch.rand(2, 3, 64, 64))
    assert out["x_hat"].shape == (2, 3, 64, 64) and set(out["likelihoods"]) == {"y", "z"}
    assert out["likelihoods"]["y"].gt(0).all() and model.aux_loss().item() >= 0
    save_checkpoint(tmp_path / "c.pt", model, {"loss": "mse", "lmbda": 0.01, "step": 0, "data": "none"})
    loaded, meta, _ = load_checkpoint(tmp_path / "c.pt")
    assert meta["model"] == name
    image = torch.rand(3, 45, 70)
    (tmp_path / "x.icm").write_bytes(encode(loaded, image, mask=(torch.rand(45, 70) > 0.5) if roi else None))
    decoded = decode(loaded, (tmp_path / "x.icm").read_bytes())
    with torch.no_grad():
        expected = loaded(image[None])["x_hat"][0].clamp(0, 1) if name.startswith("tcm") else None
    assert decoded.shape == image.shape
    if expected is not None:
        assert torch.allclose(decoded, expected, atol=1e-5)


def test_models_command_lists_names_and_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "45,180,752" in out  # tcm-small, the published N=64 count
