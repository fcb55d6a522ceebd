"""``icm bench train`` measures a training step in its own process (throughput, peak memory)."""

from __future__ import annotations

import json

import pytest

from icm_lib.cli import main


@pytest.mark.slow
def test_bench_cli_reports_throughput_and_memory(project_root):
    assert main(["bench", "train", "--profile", "smoke", "--models", "bmshj2018-hyperprior", "--steps", "1"]) == 0
    data = json.loads((project_root / "data" / "smoke" / "results" / "bench" / "train.json").read_text())
    row, bf16 = data["results"]
    assert row["model"] == "bmshj2018-hyperprior" and row["parameters"] > 0
    assert row["crop_size"] == 64 and row["batch_size"] == 2
    assert row["images_per_second"] > 0 and row["cpu_seconds_per_step"] > 0
    assert row["peak_rss_mib"] > row["rss_before_model_mib"] > 0
    assert (row["compute_dtype"], bf16["compute_dtype"]) == ("float32", "bfloat16") and "speedup" not in row
    assert bf16["speedup"] == pytest.approx(row["seconds_per_step"] / bf16["seconds_per_step"])
