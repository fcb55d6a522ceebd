"""Two CPU processes under torchrun (gloo) train one codec of the smoke data; only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_train import train_root  # noqa: F401 - the fixture


def test_two_process_ddp_run(train_root, tmp_path):  # noqa: F811
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ICM_ROOT": str(train_root)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "icm_lib.cli.train",
        "--profile",
        "smoke",
        "--loss",
        "mse",
        "--lambdas",
        "0.01",
        "--model",
        "bmshj2018-hyperprior",
        "--base-steps",
        "0",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    run = train_root / "data" / "smoke" / "codecs" / "mse" / "bmshj2018-hyperprior_lambda0.01"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["step"] == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]  # one writer: no duplicates
    assert done.stdout.count("mse@0.01") == 1  # only rank 0 prints the result table
    from icm_lib.checkpoint import load_checkpoint

    _, meta, state = load_checkpoint(run / "checkpoint.pt")
    assert meta["step"] == 4 and len(state["rng"]) == 2  # per-process random states


def test_base_trains_data_parallel_from_python(train_root, monkeypatch):  # noqa: F811
    """PROCESSES=2 trains the sweep's base over two gloo processes, as a notebook starts it."""
    from icm_lib.training.sweep import sweep_configs, train_data_parallel

    monkeypatch.setenv("ICM_ROOT", str(train_root))
    params = {
        "PROFILE": "smoke",
        "MODEL": "bmshj2018-hyperprior",
        "DATASET": "shapes",
        "BASE_STEPS": 4,
        "BASE_LAMBDA": 0.01,
        "STEPS": 2,
        "BATCH_SIZE": 4,
        "CROP_SIZE": 64,
        "CHECKPOINT_EVERY": 2,
        "MODEL_KWARGS": {},
        "LAMBDAS": {},
        "OTHER_MODELS": {},
        "WARM_START": {},
    }
    base, _ = sweep_configs(params)
    train_data_parallel(base, 2)
    summary = json.loads((base.out_dir / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["step"] == 4
    with pytest.raises(ValueError, match="not divisible"):
        train_data_parallel(base, 3)
