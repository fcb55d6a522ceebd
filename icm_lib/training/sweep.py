"""Lambda sweeps: one codec per (loss, lambda), optionally warm-started from a shared base.

The paper trains each of its eight codecs from scratch (object lambdas 0.05,
0.02, 0.01, 0.005; MSE lambdas 0.01, 0.005, 0.002, 0.001). To fit the CPU
demo's budget, a profile may set ``BASE_STEPS``: one base model is trained
first (plain MSE at a middle lambda), and every codec of both sweeps is then
fine-tuned from it for ``STEPS`` steps with its own loss and lambda. This is a
deviation of the miniature only; the paper profile sets ``BASE_STEPS: 0``.
``PROCESSES`` > 1 uses that many CPU processes of one thread each: the base is
trained data-parallel over them (gloo, as under torchrun), then that many
codecs are fine-tuned side by side. On a small CPU a small model gains little
from a second thread, and more from a second process (tcm-tiny on 2 cores:
5.2 steps/s data-parallel against 3.9 with one process).
A GPU trains everything in one process (several GPUs use torchrun instead).

Codecs live in ``codecs_dir(profile)/<loss>/<model>_lambda<lmbda>/``; a run
is finished when its ``summary.json`` records at least the steps asked for.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icm_lib.checkpoint import verify_checkpoint
from icm_lib.io import read_json
from icm_lib.paths import codecs_dir
from icm_lib.training import distributed
from icm_lib.training.config import LOSSES, TrainConfig
from icm_lib.training.loop import CHECKPOINT, SUMMARY, train_codec

# Notebook parameter (upper case, as in 02_train_codecs) -> TrainConfig field.
SHARED_PARAMS = {
    "DATASET": "dataset", "MODEL": "model", "BATCH_SIZE": "batch_size", "CROP_SIZE": "crop_size",
    "LR": "lr", "AUX_LR": "aux_lr", "DECAY_AT": "decay_at", "CLIP_MAX_NORM": "clip_max_norm",
    "CHECKPOINT_EVERY": "checkpoint_every", "VAL_EVERY": "val_every", "VAL_IMAGES": "val_images",
    "SEED": "seed", "WORKERS": "workers", "OBJECT_AVERAGE": "object_average", "MODEL_KWARGS": "model_kwargs",
    "FINAL_VAL_IMAGES": "final_val_images", "EMPTY_VAL_IMAGES": "empty_val_images",
    "CACHE_IMAGES": "cache_images", "TIME_BUDGET": "time_budget",
}


@dataclass(frozen=True)
class TrainedCodec:
    """A finished codec of a sweep."""

    model: str  # registry name, e.g. tcm-tiny
    loss: str  # object | mse
    lmbda: float
    path: Path  # its checkpoint.pt

    @property
    def family(self) -> str:
        """The codec family of the coding evaluation, e.g. ``tcm-tiny-object``."""
        return f"{self.model}-{self.loss}"

    @property
    def codec_id(self) -> str:
        """``<family>@<lambda>``, e.g. ``tcm-tiny-object@0.05``."""
        return f"{self.family}@{self.lmbda:g}"

    def summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` (training time, final validation)."""
        return read_json(self.path.parent / SUMMARY)


def run_dir(profile: str, loss: str, model: str, lmbda: float) -> Path:
    """``codecs_dir(profile)/<loss>/<model>_lambda<lmbda>``."""
    return codecs_dir(profile) / loss / f"{model}_lambda{lmbda:g}"


def base_dir(profile: str, loss: str, model: str, lmbda: float) -> Path:
    """The shared warm-start model's folder (not itself a codec of the sweeps)."""
    return codecs_dir(profile) / "base" / f"{model}_{loss}_lambda{lmbda:g}"


def is_finished(out_dir: Path, steps: int) -> bool:
    """Whether the run in ``out_dir`` completed at least ``steps`` steps."""
    summary = Path(out_dir) / SUMMARY
    if not summary.is_file() or not (Path(out_dir) / CHECKPOINT).is_file():
        return False
    if read_json(summary).get("step", 0) < steps:
        return False
    verify_checkpoint(Path(out_dir) / CHECKPOINT)  # a truncated or altered checkpoint is an error, not a finished run
    return True


def trained_codecs(profile: str) -> list[TrainedCodec]:
    """The finished codecs of a profile, by loss then decreasing lambda."""
    found = []
    for loss in LOSSES:
        for summary in sorted((codecs_dir(profile) / loss).glob(f"*/{SUMMARY}")):
            data = read_json(summary)
            if (summary.parent / CHECKPOINT).is_file():
                found.append(TrainedCodec(data["model"], loss, float(data["lmbda"]), summary.parent / CHECKPOINT))
    return sorted(found, key=lambda c: (LOSSES.index(c.loss), -c.lmbda))


def sweep_configs(params: dict[str, Any], losses: tuple[str, ...] = LOSSES) -> tuple[TrainConfig | None, list[TrainConfig]]:
    """The base run (None without ``BASE_STEPS``) and one run per (loss, lambda) from notebook parameters."""
    profile = params["PROFILE"]
    shared = {field: params[key] for key, field in SHARED_PARAMS.items() if key in params}
    shared["resume"] = params.get("RESUME", True)
    base = None
    if params.get("BASE_STEPS", 0) > 0:
        loss, lmbda = params.get("BASE_LOSS", "mse"), params["BASE_LAMBDA"]
        base_shared = {**shared, "lr": params.get("BASE_LR", shared.get("lr", 1e-4))}
        base = TrainConfig(base_dir(profile, loss, shared["model"], lmbda), profile=profile, loss=loss, lmbda=lmbda,
                           steps=params["BASE_STEPS"], **base_shared)
    init = base.out_dir / CHECKPOINT if base else (Path(params["INIT"]) if params.get("INIT") else None)
    runs = [
        TrainConfig(run_dir(profile, loss, shared["model"], lmbda), profile=profile, loss=loss, lmbda=float(lmbda),
                    steps=params["STEPS"], init=init, init_official=bool(params.get("INIT_OFFICIAL")) and base is None, **shared)
        for loss in losses
        for lmbda in params[f"{loss.upper()}_LAMBDAS"]
    ]
    return base, runs


def train_sweeps(params: dict[str, Any], losses: tuple[str, ...] = LOSSES, ctx: distributed.Context | None = None) -> list[TrainedCodec]:
    """Train the base (when asked) and every codec of the sweeps, skipping finished runs.

    Args:
        params: the ``02_train_codecs`` parameters (``notebook_params(profile, "02_train_codecs")``);
            ``PROCESSES`` (default 1) codecs are trained side by side after the base.
        losses: which sweeps to run.
    Returns:
        The profile's finished codecs of these losses.
    """
    ctx = ctx or distributed.setup()
    base, runs = sweep_configs(params, losses)
    todo = [cfg for cfg in ([base] if base else []) + runs if not _reused(cfg, ctx)]
    processes = int(params.get("PROCESSES", 1))
    side_by_side = processes > 1 and ctx.world == 1 and ctx.device.type == "cpu"
    if base in todo:
        if side_by_side:
            train_data_parallel(base, processes)
        else:
            train_codec(base, ctx)
        todo.remove(base)
    if side_by_side and len(todo) > 1:
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(train_one_thread, todo):
                pass
    else:
        for cfg in todo:
            train_codec(cfg, ctx)
    return [c for c in trained_codecs(params["PROFILE"]) if c.loss in losses and c.model == params["MODEL"]]


def _reused(cfg: TrainConfig, ctx: distributed.Context) -> bool:
    if not is_finished(cfg.out_dir, cfg.steps):
        return False
    if ctx.is_main:
        print(f"[train] {cfg.out_dir.name} ({cfg.loss}): finished, reused", flush=True)
    return True


def train_one_thread(cfg: TrainConfig) -> None:
    """One run in a worker process of :func:`train_sweeps`, with one thread."""
    import torch

    torch.set_num_threads(1)
    train_codec(cfg, distributed.setup())


def train_data_parallel(cfg: TrainConfig, processes: int) -> None:
    """Train one run data-parallel over ``processes`` local CPU processes (gloo, one thread each).

    The same as ``torchrun --nproc_per_node <processes> -m icm_lib.cli.train`` on this
    machine, started from Python (a notebook) instead of the shell. A failure in
    any process is raised here with that process's traceback.
    """
    import torch.multiprocessing as mp

    if cfg.batch_size % processes:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by the {processes} processes")
    mp.start_processes(_data_parallel_worker, args=(cfg, processes, _free_port()), nprocs=processes, start_method="spawn")


def _data_parallel_worker(rank: int, cfg: TrainConfig, world: int, port: int) -> None:
    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    ctx = distributed.setup()
    try:
        train_codec(cfg, ctx)
    finally:
        distributed.teardown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sweep_runs(params: dict[str, Any], losses: tuple[str, ...] = LOSSES) -> dict[str, Path]:
    """Every run folder of the sweeps by label (``base mse@0.003``, ``tcm-tiny-object@0.05`` ...)."""
    base, runs = sweep_configs(params, losses)
    out = {f"base {base.loss}@{base.lmbda:g}": base.out_dir} if base else {}
    out.update({f"{cfg.model}-{cfg.loss}@{cfg.lmbda:g}": cfg.out_dir for cfg in runs})
    return out
