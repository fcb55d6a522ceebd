"""Notebook 03 at the smoke profile: codes both val splits with every codec, writes the figures and its record."""

from __future__ import annotations

import json
import math


def test_notebook_03_smoke(smoke_coded):
    from icm_lib.evaluate.recognition.curves import compared_methods
    from icm_lib.notebook import read_record
    from icm_lib.paths import decoded_dir, figures_dir, results_dir, runs_dir
    from icm_lib.pipeline import run_notebook

    run_notebook(smoke_coded / "notebooks" / "03_coding_examples.ipynb", "smoke", runs_dir("smoke"))
    rec = read_record("03_coding_examples", "smoke")
    assert rec["datasets"] == ["shapes", "aerial"]
    assert any("vvc" in s for s in rec["skipped"]) or "vvc@qp42" in rec["codecs"]
    for dataset in ("shapes", "aerial"):
        families = rec["families"][dataset]
        assert {"bmshj2018-hyperprior-object", "bmshj2018-hyperprior-mse", "jpeg", "webp", "avif"} <= set(families)
        assert {"mbt2018-mean-roi-object", "bmshj2018-hyperprior-task"} <= set(families)  # the compared methods
        for name in (f"coding_examples_{dataset}", f"object_psnr_vs_bpp_{dataset}"):
            assert (figures_dir() / f"{name}.png").stat().st_size > 10_000
            assert (figures_dir() / f"{name}.pdf").is_file()
        pairs = rec["bit_share_at_similar_bpp"][dataset]
        assert len(pairs) == 2 and all(0 <= p["object_bit_share"] <= 1 and 0 <= p["mse_bit_share"] <= 1 for p in pairs)
        assert all(set(p["others"]) == {"ROI, Object-MSE", "task loss"} for p in pairs)
        assert rec["shown_pairs"][dataset]["others"]["ROI, Object-MSE"]["id"].startswith("mbt2018-mean-roi-object@")
        compared = compared_methods("smoke", dataset, "yolo")  # notebook 04's table of them, before any detector
        assert set(compared) == {"ROI, Object-MSE", "task loss"}  # (untrained codecs: BD values may be NaN)
        assert all(math.isnan(row["bd_rate_pretrained"]) for row in compared.values())
        # notebook 04 evaluates the decoded folders as they are: images, labels beside them, records
        folder = decoded_dir("smoke") / dataset / "bmshj2018-hyperprior-object@0.05"
        n_val = len(list((smoke_coded / "data/smoke/datasets" / dataset / "images/val").iterdir()))
        assert len(list((folder / "images/val").glob("*.png"))) == n_val
        assert len(list((folder / "labels/val").glob("*.txt"))) > 0
        jpeg = json.loads((results_dir("smoke") / "coding" / dataset / "jpeg.json").read_text())
        assert "real bitstream" in jpeg["description"] and len(jpeg["results"]["bpp"]) == 2
