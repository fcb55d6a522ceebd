"""`icm bench codec` plumbing on tiny inputs (a benchmark measures; only its bookkeeping is checked)."""

from __future__ import annotations

import math

import pytest

from icm_lib.bench_codec import bench, format_row
from icm_lib.bench_codec import test_images as photo_crops
from icm_lib.checkpoint import save_checkpoint
from icm_lib.cli import main
from icm_lib.models import create

pytestmark = pytest.mark.usefixtures("one_thread")


def test_photo_crops_are_images():
    crops = photo_crops(64, 3)
    assert crops.shape == (3, 3, 64, 64) and 0 <= crops.min() and crops.max() <= 1 and crops.std() > 0.05


def test_bench_rows_measure_real_bits():
    rows = bench(["tcm-tiny"], [64], [1, 2], {}, train_steps=2)
    assert [(r.size, r.batch) for r in rows] == [(64, 1), (64, 2)]
    assert all(r.encode_ms > 0 and r.decode_ms > 0 and 0.3 < r.bits_ratio < 3 for r in rows)
    assert rows[0].bpp > 0 and math.isnan(rows[1].bpp)
    assert "2 quick RD steps" in rows[0].weights and "64x64" in format_row(rows[0])


def test_bench_command_names_checkpoint_weights(tmp_path, capsys):
    save_checkpoint(tmp_path / "c.pt", create("tcm-tiny"), {"loss": "mse", "lmbda": 0.01, "step": 7, "data": "x"})
    assert (
        main(
            [
                "bench",
                "codec",
                "--models",
                "tcm-tiny",
                "--sizes",
                "64",
                "--batches",
                "1",
                "--checkpoint",
                str(tmp_path / "c.pt"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bits/estimate" in out and "(step 7)" in out


def test_bench_codes_with_the_tables_asked_for():
    from icm_lib.bench_codec import prepare

    model, weights = prepare("tcm-tiny", {}, 0)
    assert weights.endswith("256 scales, proportional rounding") and len(model.gaussian_conditional.scale_table) == 256
    model, weights = prepare("tcm-tiny", {}, 0, {"scale_levels": 64, "cdf_rounding": "compressai"})
    assert weights.endswith("64 scales, compressai rounding") and len(model.gaussian_conditional.scale_table) == 64
