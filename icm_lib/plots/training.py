"""Figures of notebook 02, drawn from the files training wrote: each run's
``metrics.jsonl`` (training curves) and ``results/training/<family>.json``
(rate versus PSNR inside the object mask and over the background)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from icm_lib.checkpoint import read_weights_only
from icm_lib.io import read_json
from icm_lib.training.loop import CHECKPOINT, HISTORY, METRICS, SUMMARY
from icm_lib.training.report import results_by_loss

LOSS_STYLE = {"object": "-", "mse": "--"}  # another registered loss: dash-dot


def run_loss(run_dir: Path) -> str | None:
    """The loss a run was trained with, from its summary or checkpoint (None: neither exists yet)."""
    if (Path(run_dir) / SUMMARY).is_file():
        return read_json(Path(run_dir) / SUMMARY).get("loss")
    if (Path(run_dir) / CHECKPOINT).is_file():
        return read_weights_only(Path(run_dir) / CHECKPOINT)["meta"].get("loss")
    return None


def warm_start_offset(run_dir: Path, depth: int = 8) -> int:
    """The steps a warm-started run (``WARM_START``, or ``--init`` with one of this project's checkpoints)
    continues from: its source codec's (with the source's own offset when it was warm-started too, e.g. the
    ROI codec from Object-MSE 0.05 from 0.015), else 0.

    Its own log counts its fine-tuning steps from 0; drawn after the source's, its curves continue
    the source's instead of starting again at the left: from the step the source had when the fine-tune
    started (the run records it), not the step it has now (it may have trained on since). A source that is
    no run here (a codec grown from another model's, ``GROWN_FROM``, installed from the zoo without it)
    counts with the step the run records, without the source's own offset.
    """
    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file() or depth <= 0:
        return 0
    meta = read_weights_only(checkpoint)["meta"]
    config = meta.get("train_config") or {}
    source = Path(config["init"]) if config.get("init") and not config.get("init_official") else None
    started = (meta.get("warm_start") or {}).get("step")
    if source is None or not source.is_file():
        return int(started) if started is not None and config.get("warm_start") else 0
    step = int(read_weights_only(source)["meta"].get("step", 0)) if started is None else int(started)
    return step + warm_start_offset(source.parent, depth - 1)


def _smooth(values: list[float], width: int) -> np.ndarray:
    v = np.asarray([np.nan if x is None else x for x in values], float)
    if width <= 1 or len(v) < width:
        return v
    kernel = np.ones(width)
    ok = np.isfinite(v)
    return np.convolve(np.where(ok, v, 0), kernel, "same") / np.maximum(np.convolve(ok, kernel, "same"), 1)


def read_metrics(run_dir: Path, split: str = "train", name: str = METRICS) -> dict[str, list]:
    """A run's logged rows of one split, as columns (``name``: another log of the run's, e.g. ``HISTORY``)."""
    rows = [
        json.loads(line) for line in (Path(run_dir) / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    rows = [r for r in rows if r["split"] == split]
    return {key: [r.get(key) for r in rows] for key in (rows[0] if rows else {})}


def plot_training_curves(runs: dict[str, Path], smooth: int = 9):
    """Loss, rate and object-region PSNR against step for each run (``{label: run folder}``)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for i, (label, folder) in enumerate(runs.items()):
        cols = read_metrics(folder)
        if not cols:
            continue
        style = LOSS_STYLE.get(run_loss(folder), "-.")
        for ax, key in zip(axes, ("loss", "bpp_loss", "object_psnr")):
            ax.plot(cols["step"], _smooth(cols[key], smooth), style, color=f"C{i % 10}", label=label, lw=1.2)
    for ax, title in zip(axes, ("loss (R + lambda 255^2 D)", "rate estimate (bpp)", "object-region PSNR (dB)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_region_rate_distortion(profile: str, model: str, bd_psnr: dict[str, float] | None = None):
    """Real bpp against PSNR inside the object mask and over the background, a curve per loss trained."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for loss, body in results_by_loss(profile, model).items():
        res = body["results"]
        for ax, key in zip(axes, ("object_psnr", "background_psnr")):
            ax.plot(res["bpp"], res[key], LOSS_STYLE.get(loss, "-."), marker="o", label=f"{model}, {body['method']}")
            for bpp, psnr, lmbda in zip(res["bpp"], res[key], res["lmbda"]):
                ax.annotate(f"{lmbda:g}", (bpp, psnr), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for ax, region, key in zip(axes, ("object region", "background"), ("object", "background")):
        title = f"PSNR over the {region}"
        if bd_psnr is not None:
            title += f"  (BD-PSNR {bd_psnr[key]:+.2f} dB)"
        ax.set_title(title)
        ax.set_xlabel("bpp (real bitstream)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_validation_curves(runs: dict[str, Path], from_step: int = 0):
    """Where the bits go as training proceeds: each run's validations against step (from ``from_step`` on,
    counted as the figure counts them, after a warm-started run's source).

    Real bpp (solid; dotted: on the val images with no object), PSNR inside the objects
    and over the background, and the share of the bits spent inside the objects (the
    grey line: the objects' share of the pixels). A codec that has learned where the
    objects are shows the share rising well above the pixel share; flat curves at the
    right say that training has converged. A codec grown from another model's (``GROWN_FROM``)
    is drawn from step 0, its source's validations (``history.jsonl``) before its own.
    """
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    pixel_share = []
    for i, (label, folder) in enumerate(runs.items()):
        cols = read_metrics(folder, "val") if (Path(folder) / METRICS).is_file() else {}
        if not cols:
            continue
        style = LOSS_STYLE.get(run_loss(folder), "-.")
        color = f"C{i % 10}" if len(runs) <= 10 else plt.get_cmap("tab20")(i % 20)  # one colour per run
        offset = warm_start_offset(folder)
        earlier = read_metrics(folder, "val", HISTORY) if offset and (Path(folder) / HISTORY).is_file() else {}
        cols["step"] = [offset + s for s in cols["step"]]
        if earlier:  # the source's validations, then the run's own after the step it was grown at
            n = len(earlier["step"])
            cols = {key: [*earlier.get(key, [float("nan")] * n), *values] for key, values in cols.items()}
            label = f"{label} (grown at step {offset})"
        elif offset:
            label = f"{label} (from step {offset})"
        keep = [i for i, s in enumerate(cols["step"]) if s >= from_step]
        cols = {key: [values[i] for i in keep] for key, values in cols.items()}
        steps = cols["step"]
        axes[0].plot(steps, cols["bpp"], style, color=color, label=label, lw=1.2, marker="o", ms=3)
        if "empty_bpp" in cols:
            axes[0].plot(steps, cols["empty_bpp"], ":", color=color, lw=1.0, marker=".", ms=3)
        for ax, key in zip(axes[1:], ("object_psnr", "background_psnr", "object_bit_share")):
            if key in cols:
                ax.plot(steps, cols[key], style, color=color, lw=1.2, marker="o", ms=3)
        pixel_share += [s for s in cols.get("object_pixel_share", []) if s is not None]
    if pixel_share:
        axes[3].axhline(float(np.mean(pixel_share)), color="grey", lw=1, label="objects' share of the pixels")
        axes[3].legend(fontsize=7)
    titles = (
        "bpp (real; dotted: images without objects)",
        "PSNR inside the objects (dB)",
        "PSNR on the background (dB)",
        "share of the bits inside the objects",
    )
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
