"""Training throughput and peak memory of the codecs on this machine (``icm bench train``).

Each configuration runs in its own Python process, so that its peak resident
memory (``ru_maxrss``) is its own: one warm-up step, then timed steps of the
real training step (forward, Object-MSE loss of Eq. (4), backward, clipping,
both Adam updates) on random crops of the demo's size, in each compute dtype
asked for (:mod:`icm_lib.training.precision`), with the speed of each against
float32 in the same run. A benchmark measures; it does not pass or fail.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from icm_lib.config import notebook_params
from icm_lib.losses import ObjectRateDistortionLoss
from icm_lib.models import create, parameter_count
from icm_lib.paths import results_dir
from icm_lib.training import precision
from icm_lib.training.state import configure_optimizers


def measure(
    model_name: str,
    crop_size: int,
    batch_size: int,
    steps: int,
    compute_dtype: str = "float32",
    model_kwargs: dict | None = None,
) -> dict:
    """Time ``steps`` training steps of one model in this process; returns images/s and peak memory."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    model = precision.prepare(create(model_name, **(model_kwargs or {})).train(), compute_dtype)
    optimizer, aux_optimizer = configure_optimizers(model, 1e-4, 1e-3)
    criterion = ObjectRateDistortionLoss(0.01)
    x = torch.rand(batch_size, 3, crop_size, crop_size)
    mask = (torch.rand(batch_size, 1, crop_size, crop_size) > 0.7).float()
    seconds, cpu_seconds = [], []
    for _ in range(steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        criterion(precision.forward(model, (x,), compute_dtype), x, mask)["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    timed = sum(seconds[1:])
    return {
        "model": model_name,
        "model_kwargs": model_kwargs or {},
        "compute_dtype": compute_dtype,
        "parameters": parameter_count(model),
        "crop_size": crop_size,
        "batch_size": batch_size,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "seconds_per_step": timed / steps,
        "images_per_second": batch_size * steps / timed,
        # CPU time is what an idle machine's wall time would be with one thread: on a shared machine
        # wall time also counts the waits for a core.
        "cpu_seconds_per_step": sum(cpu_seconds[1:]) / steps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_model_mib": rss_before / 1024,
    }


def bench(
    models: tuple[str, ...],
    crop_size: int,
    batch_size: int,
    steps: int,
    compute_dtypes: tuple[str, ...] = ("float32",),
    model_kwargs: dict[str, dict] | None = None,
) -> list[dict]:
    """:func:`measure` each model in each compute dtype, each in a fresh subprocess; ``model_kwargs``: per
    model name. A row after a model's float32 row also says its speed against float32 (``speedup``)."""
    rows = []
    for name in models:
        float32 = None
        for dtype in compute_dtypes:
            kwargs = json.dumps((model_kwargs or {}).get(name, {}))
            cmd = [sys.executable, "-m", "icm_lib.bench_train", name, str(crop_size), str(batch_size), str(steps)]
            done = subprocess.run([*cmd, dtype, kwargs], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"benchmark of {name} ({dtype}) failed: {done.stderr.strip().splitlines()[-1:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            float32 = r if dtype == "float32" else float32
            if float32 is not None and r is not float32:
                r["speedup"] = float32["seconds_per_step"] / r["seconds_per_step"]
            rows.append(r)
            against = f", {r['speedup']:.2f}x float32's speed" if "speedup" in r else ""
            print(
                f"{name:<12} {dtype:<8} {r['parameters']:>11,} params  batch {batch_size} x {crop_size}^2: "
                f"{r['images_per_second']:.2f} images/s ({r['seconds_per_step']:.2f} s/step, "
                f"{r['cpu_seconds_per_step']:.2f} CPU s/step, {r['threads']} threads{against}), "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    return rows


def bench_profile(
    profile: str,
    models: tuple[str, ...] = (),
    crop_size: int | None = None,
    batch_size: int | None = None,
    steps: int = 3,
    compute_dtypes: tuple[str, ...] = tuple(precision.COMPUTE_DTYPES),
) -> Path:
    """:func:`bench` at the model (with its ``MODEL_KWARGS``), crop size and batch of a profile's
    ``02_train_codecs`` section (unless given), written to ``results/bench/train.json``; returns that path."""
    params = notebook_params(profile, "02_train_codecs")
    crop = crop_size or params.get("CROP_SIZE", 256)
    batch = batch_size or params.get("BATCH_SIZE", 8)
    models = tuple(models) or (params["MODEL"],)
    kwargs = {params["MODEL"]: params.get("MODEL_KWARGS") or {}}
    rows = bench(models, crop, batch, steps, tuple(compute_dtypes), kwargs)
    path = results_dir(profile) / "bench" / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": "train",
        "description": "training images per second and peak resident memory, one process per model and compute dtype, CPU threads as shown; speedup: against float32 in the same run",
        "results": rows,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    model, crop, batch, steps = sys.argv[1], *map(int, sys.argv[2:5])
    dtype, kwargs = (sys.argv[5], json.loads(sys.argv[6])) if len(sys.argv) > 6 else ("float32", {})
    print(json.dumps(measure(model, crop, batch, steps, dtype, kwargs)))
