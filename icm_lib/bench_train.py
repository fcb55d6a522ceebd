"""``icm bench train``: training throughput and peak memory of the codecs on this machine.

Each configuration runs in its own Python process, so that its peak resident
memory (``ru_maxrss``) is its own: one warm-up step, then timed steps of the
real training step (forward, Object-MSE loss of Eq. (4), backward, clipping,
both Adam updates) on random crops of the demo's size. A benchmark measures;
it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from icm_lib.cli_groups import group
from icm_lib.config import PROFILES, notebook_params
from icm_lib.losses import ObjectRateDistortionLoss
from icm_lib.models import create, parameter_count
from icm_lib.paths import results_dir
from icm_lib.training.state import configure_optimizers

MODELS = ("tcm-tiny", "tcm-small")


def measure(model_name: str, crop_size: int, batch_size: int, steps: int) -> dict:
    """Time ``steps`` training steps of one model in this process; returns images/s and peak memory."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    model = create(model_name).train()
    optimizer, aux_optimizer = configure_optimizers(model, 1e-4, 1e-3)
    criterion = ObjectRateDistortionLoss(0.01)
    x = torch.rand(batch_size, 3, crop_size, crop_size)
    mask = (torch.rand(batch_size, 1, crop_size, crop_size) > 0.7).float()
    seconds, cpu_seconds = [], []
    for _ in range(steps + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        criterion(model(x), x, mask)["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    timed = sum(seconds[1:])
    return {
        "model": model_name,
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


def bench(models: tuple[str, ...], crop_size: int, batch_size: int, steps: int) -> list[dict]:
    """:func:`measure` each model in a fresh subprocess."""
    rows = []
    for name in models:
        cmd = [sys.executable, "-m", "icm_lib.bench_train", name, str(crop_size), str(batch_size), str(steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark of {name} failed: {done.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{name:<10} {r['parameters']:>11,} params  batch {batch_size} x {crop_size}^2: {r['images_per_second']:.2f} images/s "
            f"({r['seconds_per_step']:.2f} s/step, {r['cpu_seconds_per_step']:.2f} CPU s/step, {r['threads']} threads), peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    return rows


def _cli(args: argparse.Namespace) -> int:
    params = notebook_params(args.profile, "02_train_codecs")
    crop = args.crop_size or params.get("CROP_SIZE", 256)
    batch = args.batch_size or params.get("BATCH_SIZE", 8)
    rows = bench(tuple(args.models), crop, batch, args.steps)
    path = results_dir(args.profile) / "bench" / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": "train",
        "description": "training images per second and peak resident memory, one process per model, CPU threads as shown",
        "results": rows,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"-> {path}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = group(sub, "bench", "benchmarks").add_parser(
        "train", help="training images/s and peak memory of tcm-tiny and tcm-small"
    )
    p.add_argument(
        "--profile",
        default="demo",
        choices=PROFILES,
        help="takes the crop size and batch from its 02_train_codecs section",
    )
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--crop-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.set_defaults(func=_cli)


if __name__ == "__main__":
    model, crop, batch, steps = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(measure(model, crop, batch, steps)))
