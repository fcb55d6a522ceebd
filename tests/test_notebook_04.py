"""Notebook 04 at the smoke profile: real tiny YOLO trainings, fine-tuning, figures, BD-rate tables, record."""

from __future__ import annotations

import json
import math


def test_notebook_04_smoke(smoke_coded):
    from icm_lib.config import CodingStage
    from icm_lib.evaluate.coding.sweep import coding_record
    from icm_lib.notebook import read_record, record
    from icm_lib.paths import detectors_dir, figures_dir, results_dir, runs_dir
    from icm_lib.pipeline import run_notebook

    # notebook 03's record, standing in for it (notebook 04 codes what 03 recorded it coded, when missing)
    record("03_coding_examples", "smoke", coding_record(CodingStage.from_profile("smoke"), [], []))
    run_notebook(smoke_coded / "notebooks" / "04_recognition_accuracy.ipynb", "smoke", runs_dir("smoke"))
    rec = read_record("04_recognition_accuracy", "smoke")
    for dataset in ("shapes", "aerial"):
        assert (figures_dir() / f"map_vs_bpp_{dataset}_yolo.png").stat().st_size > 10_000
        assert (figures_dir() / f"map_vs_bpp_{dataset}_yolo.pdf").is_file()
        folder = results_dir("smoke") / "recognition" / dataset / "yolo"
        assert (folder / "bdrate_map.md").is_file()
        clean = rec["by_dataset_detector"][f"{dataset}/yolo"]["uncompressed_map"]
        assert clean is not None and 0.0 <= clean <= 1.0
    shapes = results_dir("smoke") / "recognition" / "shapes" / "yolo"
    finetuned = json.loads((shapes / "bmshj2018-hyperprior-object_finetuned.json").read_text())
    assert len(finetuned["results"]["map"]) == 2 and "real bitstream" in finetuned["description"]
    assert (shapes / "jpeg_finetuned.json").is_file()  # best classical = the only classical family
    assert not list((results_dir("smoke") / "recognition" / "aerial" / "yolo").glob("*_finetuned.json"))
    table = json.loads((shapes / "bdrate_map.json").read_text())
    assert table["rows"][0] == "bmshj2018-hyperprior-object (finetuned)"  # Object-MSE, not the ROI codec's loss
    assert table["methods"]["mbt2018-mean-roi-object (finetuned)"] == "ROI, Object-MSE"
    assert (shapes / "bmshj2018-hyperprior-task_finetuned.json").is_file()
    compared = rec["compared_methods"]["shapes/yolo"]
    assert set(compared) == {"ROI, Object-MSE", "task loss"}
    assert set(compared["task loss"]) == {
        "object_bd_psnr",
        "background_bd_psnr",
        "bd_rate_pretrained",
        "bd_rate_finetuned",
    }
    assert compared["ROI, Object-MSE"]["object_bd_psnr"] is None  # NaN (in the record: null): no 03 results here
    assert set(rec["headline"]) >= {
        "bd_rate_vs_mse",
        "bd_rate_vs_best_classical",
        "recovered_fraction",
        "uncompressed_map",
    }
    assert rec["wall_time_s"] > 0 and math.isfinite(rec["wall_time_s"])
    assert (detectors_dir("smoke") / "yolo" / "shapes" / "finetuned" / "jpeg@q10" / "weights" / "last.pt").is_file()
    assert not (smoke_coded / "runs" / "detect").exists()  # ultralytics wrote nothing outside detectors_dir
