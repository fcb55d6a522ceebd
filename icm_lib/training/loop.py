"""One training run: a model, a registered loss (Eq. 1, 2 or 4), a lambda; resumable and data-parallel.

The loop checkpoints atomically every ``checkpoint_every`` steps and at the
end, with everything needed to continue exactly: the weights, both Adam
states, the scheduler, the step, the per-process random states and, through
the step, the position in the data order. A non-finite loss stops the run
before the optimizer touches the weights, so the last checkpoint stays good.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from icm_lib.data.layout import DatasetLayout
from icm_lib.io import json_safe, write_atomic, write_json
from icm_lib.losses import create_criterion, method_label
from icm_lib.metrics import masked_mse, psnr_from_mse
from icm_lib.models.roi import takes_mask
from icm_lib.training import distributed, precision
from icm_lib.training.config import CODEC_FIELDS, TrainConfig, recipe_differences
from icm_lib.training.state import (
    aux_parameter_names,
    configure_optimizers,
    epoch_indices,
    rng_state,
    seed_everything,
    set_rng_state,
)
from icm_lib.training.validate import evaluate_codec

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
HISTORY = "history.jsonl"  # a grown codec's source's log, to the step it was grown at (icm_lib.zoo.install)
STATS = ("loss", "bpp_loss", "mse_loss", "object_mse_sum", "object_count")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was saved from the diverged step."""


@dataclass
class Run:
    """The live objects of a run."""

    cfg: TrainConfig
    ctx: distributed.Context
    model: nn.Module  # unwrapped, for checkpoints and validation
    net: nn.Module  # what the forward runs through (DDP or the model)
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    criterion: nn.Module
    step: int = 0
    seconds: float = 0.0  # training wall time over all sessions of this run
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) in training steps
    # a fine-tune's source (``cfg.warm_start``) and the step it had when this run started from it
    warm_start: dict[str, Any] | None = None


def train_codec(cfg: TrainConfig, ctx: distributed.Context | None = None) -> dict[str, Any]:
    """Train (or resume, or extend) one codec; returns the run's summary.

    Resumes from ``out_dir/checkpoint.pt`` when it exists, otherwise starts from
    ``cfg.init`` or from scratch. Writes ``checkpoint.pt``, ``metrics.jsonl`` and,
    when done, ``summary.json`` (with the final validation) on rank 0.

    Raises:
        TrainingDiverged: a NaN or infinite loss.
    """
    ctx = ctx or distributed.setup()
    run = _start(cfg, ctx)
    layout = DatasetLayout.of(cfg.profile, cfg.dataset)
    dataset = _dataset(layout, cfg)
    per_rank = _per_rank_batch(cfg, ctx, len(dataset))
    steps_per_epoch = len(epoch_indices(len(dataset), cfg.seed, 0, ctx.rank, ctx.world)) // per_rank
    stop = min(cfg.stop_at, cfg.steps) if cfg.stop_at > 0 else cfg.steps
    budget = Budget(cfg.time_budget, run.step) if cfg.time_budget > 0 else None
    bar = tqdm(
        total=stop,
        initial=min(run.step, stop),
        desc=f"{cfg.loss} lambda={cfg.lmbda:g}",
        disable=not ctx.is_main,
        dynamic_ncols=True,
    )
    while run.step < stop:
        epoch, skip = divmod(run.step, steps_per_epoch)
        indices = epoch_indices(len(dataset), cfg.seed, epoch, ctx.rank, ctx.world)[skip * per_rank :]
        # A private generator: creating the loader must not draw from the global stream the crops use.
        generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = DataLoader(
            dataset, batch_size=per_rank, sampler=indices, drop_last=True, num_workers=cfg.workers, generator=generator
        )
        for x, mask in loader:
            _step(run, x.to(ctx.device), mask.to(ctx.device), bar)
            if budget is not None and budget.due(run.step):
                stop = bar.total = budget.fit(run, layout)
            if cfg.val_every and run.step % cfg.val_every == 0 and run.step < cfg.steps and ctx.is_main:
                _log(
                    run,
                    {"split": "val", **evaluate_codec(run.model, layout, "val", cfg.val_images, cfg.empty_val_images)},
                )
            if run.step % cfg.checkpoint_every == 0 or run.step == stop:
                save(run)
            if run.step >= stop:
                break
    bar.close()
    if run.step < cfg.steps:  # paused at stop_at: the next call resumes from the checkpoint just written
        return {"model": cfg.model, "loss": cfg.loss, "lmbda": cfg.lmbda, "step": run.step, "paused": True}
    return _finish(run, layout)


class Budget:
    """Fits a run into ``cfg.time_budget`` seconds of wall-clock time from its measured speed.

    After :data:`WARMUP` steps (allocator, cuDNN autotuning, the first pass over
    the images filling the cache) the next :data:`TIMED` steps are timed; one
    validation is then run and timed when the run validates at intervals. From
    these the run's ``steps`` are fixed (rounded down to ``checkpoint_every``) so
    that training, :data:`VALIDATIONS` validations spread evenly and the final one
    end by the deadline. The learning-rate decay is placed at its fractions of
    the new ``steps``, and the checkpoints record them, so the run reads as one
    of that many steps. Several processes sharing a device each time their own
    steps under the same contention. Data-parallel ranks adopt rank 0's choice.
    """

    WARMUP, TIMED, VALIDATIONS = 100, 300, 8

    def __init__(self, seconds: float, step: int):
        self.deadline = time.perf_counter() + seconds
        self.seconds, self.first = seconds, step
        self.timed_from: float | None = None

    def due(self, step: int) -> bool:
        """Call after every step; true once, when the timed stretch ends."""
        if step == self.first + self.WARMUP:
            self.timed_from = time.perf_counter()
        return self.timed_from is not None and step == self.first + self.WARMUP + self.TIMED

    def fit(self, run: Run, layout: DatasetLayout) -> int:
        """Fix ``run.cfg.steps`` (and ``val_every``) to the budget; returns the new last step."""
        cfg = run.cfg
        per_step = (time.perf_counter() - self.timed_from) / self.TIMED
        val_seconds, validations = 0.0, self.VALIDATIONS if cfg.val_every else 0
        if run.ctx.is_main and validations:
            started = time.perf_counter()
            _log(
                run, {"split": "val", **evaluate_codec(run.model, layout, "val", cfg.val_images, cfg.empty_val_images)}
            )
            val_seconds = time.perf_counter() - started
        final_share = (cfg.final_val_images or 10**9) / max(cfg.val_images or 10**9, 1)
        left = (
            self.deadline
            - time.perf_counter()
            - val_seconds * (validations + max(1.0, final_share))
            - 0.02 * self.seconds
        )
        steps = run.step + max(0, int(left / per_step))
        steps = max(run.step + 1, steps // cfg.checkpoint_every * cfg.checkpoint_every)
        steps = int(distributed.gather(steps, run.ctx)[0])  # rank 0 decides
        cfg.steps = steps
        if validations:  # spread over the steps this call trains
            cfg.val_every = max(
                cfg.checkpoint_every,
                (steps - self.first) // (validations + 1) // cfg.checkpoint_every * cfg.checkpoint_every,
            )
        _place_schedule(run.scheduler, cfg, run.step)  # a decay point already passed applies now
        if run.ctx.is_main:
            print(
                f"[train] {cfg.out_dir.name}: {per_step * 1000:.1f} ms/step, validation {val_seconds:.1f} s: "
                f"{steps} steps fit the {self.seconds:.0f} s budget (lr decay at {cfg.milestones()}, "
                f"validation every {cfg.val_every})",
                flush=True,
            )
        return steps


def _dataset(layout: DatasetLayout, cfg: TrainConfig):
    from icm_lib.data.dataset import ObjectMaskDataset

    return ObjectMaskDataset(layout, "train", cfg.crop_size, train=True, cache=cfg.cache_images)


def _per_rank_batch(cfg: TrainConfig, ctx: distributed.Context, n_images: int) -> int:
    if cfg.batch_size % ctx.world:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by the {ctx.world} processes")
    per_rank = cfg.batch_size // ctx.world
    if n_images // ctx.world < per_rank:
        raise ValueError(f"{n_images} training images are too few for a batch of {cfg.batch_size}")
    return per_rank


def _start(cfg: TrainConfig, ctx: distributed.Context) -> Run:
    """Build the run: resumed from the run's own checkpoint, else initialised from ``cfg.init`` or seeded."""
    own = cfg.out_dir / CHECKPOINT
    seed_everything(cfg.seed)
    model, state, origin = _initial_model(cfg, own)
    precision.prepare(model.to(ctx.device), cfg.compute_dtype)
    if ctx.is_main and not precision.native(cfg.compute_dtype, ctx.device):
        print(
            f"[train] {cfg.out_dir.name}: warning: this {ctx.device.type.upper()} has no {cfg.compute_dtype} units "
            f"and emulates it, far slower than float32 (icm bench train measures both); --compute-dtype float32",
            flush=True,
        )
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its fastest convolutions
    optimizer, aux_optimizer = configure_optimizers(model, cfg.lr, cfg.aux_lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones(), gamma=cfg.gamma)
    criterion = create_criterion(
        cfg.loss, cfg.lmbda, {"profile": cfg.profile, "dataset": cfg.dataset}, **cfg.loss_kwargs
    ).to(ctx.device)
    run = Run(
        cfg,
        ctx,
        model,
        distributed.wrap(model, ctx, aux_parameter_names(model)),
        optimizer,
        aux_optimizer,
        scheduler,
        criterion,
        warm_start=origin,
    )
    if state is not None:
        run.step, run.seconds, run.cpu_seconds = (
            int(state["step"]),
            float(state["seconds"]),
            float(state.get("cpu_seconds", 0.0)),
        )
        if "optimizer" in state:  # else weights alone (a zoo file): Adam's moments start fresh
            optimizer.load_state_dict(state["optimizer"])
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        # Either way the learning rate is the schedule's at the step (not the saved scheduler's): a run
        # extended to more steps is back at the base rate until the first of its new decay points, as the
        # same run seeded from the zoo's weights on another machine is.
        _place_schedule(scheduler, cfg, run.step)
        rngs = state.get("rng", [])
        if len(rngs) == ctx.world:
            set_rng_state(rngs[ctx.rank])
        else:  # resumed with another number of processes: weights and step hold, data order and crops differ
            seed_everything(cfg.seed + 1000 * run.step + ctx.rank)
        if ctx.is_main:
            _truncate_metrics(cfg.out_dir / METRICS, run.step)
    elif ctx.world > 1:
        seed_everything(cfg.seed + ctx.rank)  # different crops on each process
    return run


def _place_schedule(scheduler: torch.optim.lr_scheduler.MultiStepLR, cfg: TrainConfig, step: int) -> None:
    """Set a MultiStepLR to where ``cfg``'s schedule is after ``step`` steps (the decays already passed applied)."""
    scheduler.base_lrs = [cfg.lr for _ in scheduler.optimizer.param_groups]
    scheduler.milestones = Counter(cfg.milestones())
    passed = sum(count for milestone, count in scheduler.milestones.items() if milestone <= step)
    for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base_lr * scheduler.gamma**passed
    scheduler.last_epoch = step
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def _initial_model(cfg: TrainConfig, own: Path) -> tuple[nn.Module, dict | None, dict | None]:
    """The run's own checkpoint with its training state, else ``cfg.init``, else a fresh model; with the
    fine-tune's origin (its source and that source's step then, :func:`started_from`), None for others."""
    from icm_lib.checkpoint import load_checkpoint, load_official_tcm
    from icm_lib.models import create

    if own.is_file():
        if not cfg.resume:
            raise FileExistsError(
                f"{own} exists from an unfinished run: pass --resume to continue it, or delete {own.parent}"
            )
        model, meta, state = load_checkpoint(own)
        if state is None:
            raise ValueError(f"{own} holds no training state to resume from")
        differences = recipe_differences(cfg, meta.get("train_config") or {}, steps=False, only=CODEC_FIELDS)
        if differences:  # another codec altogether (its schedule and optimizer settings may change on resuming)
            raise ValueError(
                f"{own} was trained with other settings ({'; '.join(differences)}): "
                f"delete {own.parent} to train it anew, or ask for its settings"
            )
        return model, state, meta.get("warm_start")
    if cfg.init is None:
        return create(cfg.model, **cfg.model_kwargs), None, None
    if not cfg.init.is_file():
        raise FileNotFoundError(f"no checkpoint {cfg.init} to initialise from")
    if cfg.init_official:
        return load_official_tcm(cfg.init, cfg.model.removeprefix("tcm-")), None, None
    model, meta, _ = load_checkpoint(cfg.init)
    origin = {"from": cfg.warm_start, "step": int(meta["step"])} if cfg.warm_start else None
    if meta.get("model") != cfg.model:  # e.g. the ROI codec fine-tuned from the plain codec it gates
        other = create(cfg.model, **cfg.model_kwargs)
        try:
            other.load_state_dict(model.state_dict())
        except RuntimeError:
            raise ValueError(
                f"{cfg.init} holds a {meta.get('model')} model, whose weights do not fit {cfg.model}"
            ) from None
        model = other
    return model, None, origin


def started_from(checkpoint: Path) -> dict[str, Any] | None:
    """A fine-tune's origin as its checkpoint records it: ``{"from": source codec, "step": the source's step
    when the fine-tune started}`` (None: trained from scratch, or a checkpoint from before this was recorded)."""
    from icm_lib.checkpoint import read_weights_only

    return read_weights_only(checkpoint)["meta"].get("warm_start")


def _step(run: Run, x: torch.Tensor, mask: torch.Tensor, bar) -> None:
    """One optimisation step of the rate-distortion loss and one of the auxiliary loss."""
    run.net.train()
    started, cpu_started = time.perf_counter(), time.process_time()
    run.optimizer.zero_grad(set_to_none=True)
    run.aux_optimizer.zero_grad(set_to_none=True)
    inputs = (x, mask) if takes_mask(run.model) else (x,)  # an ROI codec is given the object mask
    out = precision.forward(run.net, inputs, run.cfg.compute_dtype)
    losses = run.criterion(out, x, mask)
    losses["loss"].backward()
    stats = distributed.average(_batch_stats(losses, out["x_hat"].detach(), x, mask), run.ctx)
    if not torch.isfinite(stats[0]):
        own = run.cfg.out_dir / CHECKPOINT
        kept = f"the last good checkpoint is {own}" if own.is_file() else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"loss is {stats[0].item()} at step {run.step + 1} ({run.cfg.loss}, lambda={run.cfg.lmbda:g}): "
            f"stopped without saving; {kept} (try a lower --lr)"
        )
    if run.cfg.clip_max_norm > 0:
        torch.nn.utils.clip_grad_norm_(
            [p for g in run.optimizer.param_groups for p in g["params"]], run.cfg.clip_max_norm
        )
    run.optimizer.step()
    aux_loss = run.model.aux_loss()
    aux_loss.backward()
    distributed.average_gradients([p for g in run.aux_optimizer.param_groups for p in g["params"]], run.ctx)
    run.aux_optimizer.step()
    run.scheduler.step()
    run.step += 1
    run.seconds += time.perf_counter() - started
    run.cpu_seconds += time.process_time() - cpu_started
    row = dict(zip(STATS, stats.tolist())) | {"aux_loss": aux_loss.item()}
    object_sum, object_count = row.pop("object_mse_sum"), row.pop("object_count")
    row["object_psnr"] = psnr_from_mse(object_sum / object_count) if object_count else math.nan
    if run.ctx.is_main:
        _log(run, {"split": "train", **row, "lr": run.optimizer.param_groups[0]["lr"]})
        bar.update(1)
        bar.set_postfix(
            loss=f"{row['loss']:.3f}", bpp=f"{row['bpp_loss']:.3f}", obj_psnr=f"{row['object_psnr']:.2f}", refresh=False
        )


def _batch_stats(losses: dict, x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Loss terms and the object region's summed MSE and item count, as one tensor to average."""
    object_mse = masked_mse(x, x_hat.clamp(0, 1), mask)
    has_object = torch.isfinite(object_mse)
    return torch.stack(
        [
            losses["loss"].detach(),
            losses["bpp_loss"].detach(),
            losses["mse_loss"].detach(),
            object_mse[has_object].sum(),
            has_object.sum().to(x.dtype),
        ]
    ).float()


def save(run: Run) -> Path:
    """Write the run's checkpoint atomically, with its training state (rank 0 writes; all take part)."""
    rngs = distributed.gather(rng_state(), run.ctx)
    path = run.cfg.out_dir / CHECKPOINT
    if run.ctx.is_main:
        from icm_lib.checkpoint import save_checkpoint

        state = {
            "optimizer": run.optimizer.state_dict(),
            "aux_optimizer": run.aux_optimizer.state_dict(),
            "lr_scheduler": run.scheduler.state_dict(),
            "step": run.step,
            "seconds": run.seconds,
            "cpu_seconds": run.cpu_seconds,
            "rng": rngs,
        }
        save_checkpoint(path, run.model, _meta(run), training_state=state)
    distributed.barrier(run.ctx)
    return path


def _meta(run: Run) -> dict[str, Any]:
    cfg = run.cfg
    return {
        "model": cfg.model,
        "model_config": getattr(run.model, "registry_config", cfg.model_kwargs),
        "loss": cfg.loss,
        "lmbda": cfg.lmbda,
        "method": method_label(run.model, run.cfg.loss),
        "step": run.step,
        "data": {"profile": cfg.profile, "dataset": cfg.dataset, "split": "train"},
        "train_config": cfg.to_meta(),
        **({"warm_start": run.warm_start} if run.warm_start else {}),
    }


def _log(run: Run, row: dict[str, Any]) -> None:
    path = run.cfg.out_dir / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(json_safe({"step": run.step, **row})) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines a killed session logged after its last checkpoint (write, then rename)."""
    if not path.is_file():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    write_atomic(path, "".join(line + "\n" for line in keep))


def _finish(run: Run, layout: DatasetLayout) -> dict[str, Any]:
    """Validate on the whole val split and write ``summary.json`` (rank 0); every rank returns it."""
    summary = None
    if run.ctx.is_main:
        started = time.perf_counter()
        val = evaluate_codec(run.model, layout, "val", run.cfg.final_val_images, run.cfg.empty_val_images) | {
            "seconds": time.perf_counter() - started
        }
        _log(run, {"split": "val", **val})
        summary = {
            "model": run.cfg.model,
            "loss": run.cfg.loss,
            "lmbda": run.cfg.lmbda,
            "method": method_label(run.model, run.cfg.loss),
            "step": run.step,
            "train_seconds": run.seconds,
            "train_cpu_seconds": run.cpu_seconds,
            "threads": torch.get_num_threads(),
            "images_per_second": run.step * run.cfg.batch_size / max(run.seconds, 1e-9),
            "device": str(run.ctx.device),
            "processes": run.ctx.world,
            "val": val,
            "config": run.cfg.to_meta(),
            "data_fingerprint": layout.fingerprint(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_json(run.cfg.out_dir / SUMMARY, summary)
    return distributed.gather(summary, run.ctx)[0]
