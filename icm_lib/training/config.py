"""The settings of one training run, and the defaults each profile gives them.

Defaults follow TCM's published recipe (Liu et al., CVPR 2023): Adam lr 1e-4,
auxiliary Adam lr 1e-3, gradient clipping at 1.0, a step decay of the learning
rate by 10x late in training. Decay points are fractions of the run's steps so
that one setting serves the seconds-long smoke runs and the paper's long ones.

A finished run is reused only when what made it matches: :func:`recipe_differences`
compares a run's recorded settings and data with the ones asked for, leaving out
the settings that change how it ran, not what it learned (:data:`HOW_FIELDS`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from icm_lib.losses import CRITERIA, criterion_kwargs
from icm_lib.training import precision

# Settings that change how a run trains, not what it learns: left out when deciding whether a finished
# run is the one asked for. A time budget fixes `steps` while the run goes (compared on their own).
HOW_FIELDS = (
    "out_dir",
    "stop_at",
    "resume",
    "workers",
    "cache_images",
    "time_budget",
    "checkpoint_every",
    "val_every",
    "val_images",
    "compute_dtype",  # bfloat16 transforms: a speed setting, like the device (icm_lib.training.precision)
)


def check_decay_at(fractions, name: str = "decay_at") -> tuple[float, ...]:
    """The lr decay points as floats; a fraction of the steps outside (0, 1) is refused (``name`` says whose)."""
    fractions = tuple(float(f) for f in fractions)
    if not all(0 < f < 1 for f in fractions):
        raise ValueError(f"{name} takes fractions of the steps between 0 and 1, got {list(fractions)}")
    return fractions


@dataclass
class TrainConfig:
    """One run: one model, one loss, one lambda, written to ``out_dir``."""

    out_dir: Path  # run folder: checkpoint.pt, metrics.jsonl, summary.json
    profile: str = "demo"  # whose datasets to read (data/<profile>/datasets/)
    dataset: str = "shapes"  # dataset name in the shared layout (COCO stand-in for the demo)
    model: str = "tcm-tiny"  # icm_lib.models registry name
    loss: str = "object"  # a registered loss (icm_lib.losses.CRITERIA): "object" Eq. (4), "mse" Eq. (1), "task" Eq. (2)
    lmbda: float = 0.01  # rate-distortion trade-off lambda
    loss_kwargs: dict[str, Any] = field(default_factory=dict)  # the loss's other arguments, e.g. {"average": "object"}
    steps: int = 1000  # optimisation steps of this run
    stop_at: int = (
        0  # pause at this step (checkpointed, resumable; 0: run to `steps`); the schedule stays that of `steps`
    )
    batch_size: int = 8  # images per step over all processes
    crop_size: int = 256  # square random crop, mask-aware (ObjectMaskDataset)
    lr: float = 1e-4  # Adam on the network's parameters
    aux_lr: float = 1e-3  # Adam on the entropy bottleneck quantiles (aux loss)
    decay_at: tuple[float, ...] = (0.9,)  # MultiStepLR milestones as fractions of `steps`
    gamma: float = 0.1  # learning-rate factor at each milestone
    clip_max_norm: float = 1.0  # gradient clipping of the network's parameters (0: off)
    checkpoint_every: int = 100  # steps between checkpoints; a killed run loses at most this many
    val_every: int = 0  # steps between validations (0: only at the end)
    val_images: int = 8  # val images coded at intermediate validations (0: all)
    final_val_images: int = 0  # val images coded at the end (0: all)
    empty_val_images: int = 8  # object-free val images also coded at each validation (their bpp: empty_bpp)
    init: Path | None = None  # checkpoint to start from (ours, or an official TCM one)
    init_official: bool = False  # `init` is an official TCM release checkpoint
    warm_start: str = ""  # the codec (zoo name) this run is fine-tuned from; `init` is its checkpoint
    resume: bool = True  # continue from out_dir's checkpoint (False: refuse to touch it)
    seed: int = 0  # seeds the weights, the data order and the crops
    workers: int = 0  # DataLoader workers (0 keeps resumption bit-exact)
    cache_images: bool = False  # keep the decoded training images and masks in memory (small datasets)
    time_budget: float = 0.0  # seconds this call may train (0: off): `steps` is then fixed from measured speed
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the registry's defaults
    compute_dtype: str = "float32"  # "bfloat16": the transforms in bfloat16 autocast (icm_lib.training.precision)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.init = Path(self.init) if self.init else None
        self.decay_at = check_decay_at(self.decay_at)
        self.loss_kwargs = dict(self.loss_kwargs or {})
        criterion_kwargs(self.loss, self.loss_kwargs)  # an unknown loss or argument is refused here, not mid-run
        precision.check(self.compute_dtype)
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.time_budget < math.inf:
            raise ValueError(f"time_budget must be a finite number of seconds >= 0, got {self.time_budget}")
        if not 0 < self.lmbda < math.inf:
            raise ValueError(f"lambda must be a positive finite number, got {self.lmbda}")

    def milestones(self) -> list[int]:
        """Absolute MultiStepLR milestones."""
        return sorted({max(1, round(f * self.steps)) for f in self.decay_at})

    def to_meta(self) -> dict[str, Any]:
        """The settings as plain JSON values, for checkpoints and summaries."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    """A JSON value: paths as strings, tuples as lists, a network (the task loss's) as its class and weights' hash."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "state_dict"):
        digest = hashlib.sha256()
        for name, tensor in sorted(value.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"{type(value).__name__}:{digest.hexdigest()[:16]}"
    return value


def recorded_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded settings (``train_config`` of a checkpoint, ``config`` of a summary, a zoo entry's
    ``train_config``) in today's form: records written before the loss registry held ``object_average``
    instead of ``loss_kwargs``. This is the one place that derives the new fields from the old ones."""
    config = dict(config)
    average = config.pop("object_average", None)
    if "loss_kwargs" not in config:
        config["loss_kwargs"] = {"average": average} if config.get("loss") == "object" and average else {}
    return config


def recipe(config: dict[str, Any]) -> dict[str, Any]:
    """What a run learns from: its recorded settings without :data:`HOW_FIELDS`, the loss's defaults filled in."""
    config = recorded_config(config)
    out = {k: v for k, v in config.items() if k not in HOW_FIELDS}
    if out.get("loss") in CRITERIA:
        out["loss_kwargs"] = _plain(criterion_kwargs(out["loss"], out.get("loss_kwargs") or {}))
    out["decay_at"] = [float(f) for f in out.get("decay_at", ())]
    out["warm_start"] = out.get("warm_start") or ""  # records before warm starts lack it
    # A warm-started run names its source codec; where the source's checkpoint lies (a run folder of
    # the pipeline, or of the zoo) is not what it learned from.
    out["init"] = str(out["init"]) if out.get("init") and not out["warm_start"] else None
    return out


# What makes a codec the codec it is: a resumed run may change its schedule, optimizer or batch (the loop
# extends and re-plans runs), never these.
CODEC_FIELDS = ("profile", "dataset", "model", "model_kwargs", "loss", "lmbda", "loss_kwargs")


def recipe_differences(
    wanted: TrainConfig, recorded: dict[str, Any], steps: bool = True, only: tuple[str, ...] | None = None
) -> list[str]:
    """Each setting in which a recorded run differs from ``wanted``, as ``"lr 0.0001 (asked 0.001)"``.

    Args:
        wanted: the run asked for.
        recorded: the run's recorded settings (:func:`recorded_config` reads old records too).
        steps: compare ``steps`` too (False when resuming, which may extend a run, or under a time budget).
        only: compare these settings alone (resuming: :data:`CODEC_FIELDS`).
    """
    mine, theirs = recipe(wanted.to_meta()), recipe(recorded)
    keys = [k for k in mine if (k != "steps" or steps) and (only is None or k in only)]
    return [f"{k} {theirs.get(k, 'unset')!r} (asked {mine[k]!r})" for k in keys if theirs.get(k) != mine[k]]
