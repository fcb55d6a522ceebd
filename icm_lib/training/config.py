"""The settings of one training run, and the defaults each profile gives them.

Defaults follow TCM's published recipe (Liu et al., CVPR 2023): Adam lr 1e-4,
auxiliary Adam lr 1e-3, gradient clipping at 1.0, a step decay of the learning
rate by 10x late in training. Decay points are fractions of the run's steps so
that one setting serves the seconds-long smoke runs and the paper's long ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

LOSSES = ("object", "mse")


@dataclass
class TrainConfig:
    """One run: one model, one loss, one lambda, written to ``out_dir``."""

    out_dir: Path  # run folder: checkpoint.pt, metrics.jsonl, summary.json
    profile: str = "demo"  # whose datasets to read (data/<profile>/datasets/)
    dataset: str = "shapes"  # dataset name in the shared layout (COCO stand-in for the demo)
    model: str = "tcm-tiny"  # icm_lib.models registry name
    loss: str = "object"  # "object": Eq. (4) Object-MSE; "mse": Eq. (1)
    lmbda: float = 0.01  # rate-distortion trade-off lambda
    object_average: str = "image"  # Object-MSE normalisation, see icm_lib.losses
    steps: int = 1000  # optimisation steps of this run
    stop_at: int = 0  # pause at this step (checkpointed, resumable; 0: run to `steps`); the schedule stays that of `steps`
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
    resume: bool = True  # continue from out_dir's checkpoint (False: refuse to touch it)
    seed: int = 0  # seeds the weights, the data order and the crops
    workers: int = 0  # DataLoader workers (0 keeps resumption bit-exact)
    cache_images: bool = False  # keep the decoded training images and masks in memory (small datasets)
    time_budget: float = 0.0  # seconds this call may train (0: off): `steps` is then fixed from measured speed
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the registry's defaults

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.init = Path(self.init) if self.init else None
        self.decay_at = tuple(float(f) for f in self.decay_at)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.time_budget < math.inf:
            raise ValueError(f"time_budget must be a finite number of seconds >= 0, got {self.time_budget}")
        if not 0 < self.lmbda < math.inf:
            raise ValueError(f"lambda must be a positive finite number, got {self.lmbda}")

    def milestones(self) -> list[int]:
        """Absolute MultiStepLR milestones."""
        return sorted({max(1, round(f * self.steps)) for f in self.decay_at if 0 < f < 1})

    def to_meta(self) -> dict[str, Any]:
        """The settings as plain JSON values, for checkpoints and summaries."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out
