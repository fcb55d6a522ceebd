"""A learned codec through the coding interface: checkpoint -> real bitstream -> records and bit shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_coding import make_layout

from icm_lib.checkpoint import save_checkpoint
from icm_lib.evaluate.coding.codecs import LearnedCodec
from icm_lib.evaluate.coding.sweep import bit_share_split, code_split, coding_sweep, read_family_results, read_rgb
from icm_lib.models import create


@pytest.fixture
def learned(project_root) -> LearnedCodec:
    torch.manual_seed(0)
    model = create("bmshj2018-hyperprior", N=8, M=16)
    path = project_root / "ckpt" / "checkpoint.pt"
    save_checkpoint(path, model, {"loss": "object", "lmbda": 0.05, "step": 1, "data": "tiny"})
    return LearnedCodec.from_checkpoint(path)


def test_learned_codec_names_and_real_bitstream(learned):
    assert (learned.family, learned.setting) == ("bmshj2018-hyperprior-object", "0.05")
    assert learned.id == "bmshj2018-hyperprior-object@0.05"
    image = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    data = learned.encode(image)
    assert isinstance(data, bytes) and len(data) > 0
    decoded = learned.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8


def test_learned_codec_records_and_bit_shares(learned, project_root):
    layout = make_layout("smoke", n=2, size=(64, 64))
    payload = code_split(learned, layout, "val", "smoke")
    for stem, rec in payload["images"].items():
        assert rec["bytes"] == len(learned.encode(read_rgb(layout.images("val") / f"{stem}.png")))
    bits = bit_share_split(learned, layout, "val", "smoke")
    assert all(0.0 <= r["object_bit_share"] <= 1.0 for r in bits["images"].values())
    coding_sweep("smoke", "tiny", "val", [learned], workers=2)  # sent to a worker by checkpoint path
    results = read_family_results("smoke", "tiny")["bmshj2018-hyperprior-object"]["results"]
    assert results["codec_id"] == [learned.id]
    assert results["object_bit_share"][0] == pytest.approx(bits["mean"]["object_bit_share"])
    assert 0 < results["object_area"][0] < 1
