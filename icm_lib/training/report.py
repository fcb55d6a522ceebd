"""The trained codecs' results, and the paper's effect measured as region BD-PSNR.

Each finished run's ``summary.json`` holds its final validation: real bpp from
bitstreams and PSNR over the whole image, the object mask and the background
on the val split. :func:`write_results` gathers them per codec family in
CompressAI's results shape; :func:`region_bd_psnr` compares the object codec
with the MSE codec at equal bpp (Bjontegaard delta PSNR, ``bjontegaard``
package, piecewise cubic interpolation) over the object region and over the
background: the paper's claim is positive for the first and negative for the
second.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from icm_lib.evaluate.coding.codecs import codec_identity
from icm_lib.io import write_json
from icm_lib.metrics import bd_psnr
from icm_lib.paths import results_dir
from icm_lib.training.sweep import TrainedCodec, trained_codecs

METRICS = ("bpp", "psnr", "object_psnr", "background_psnr")


def family_results(codecs: list[TrainedCodec]) -> dict[str, dict[str, Any]]:
    """Results of each family (``tcm-tiny-object`` ...) in CompressAI's shape, sorted by bpp."""
    out: dict[str, dict[str, Any]] = {}
    for codec in codecs:
        summary = codec.summary()
        entry = out.setdefault(
            codec.family,
            {
                "name": codec.family,
                "method": codec.method,
                "model": codec.model,
                "loss": codec.loss,
                "description": f"{codec.model} trained with the {codec.loss} loss; bpp from the real bitstream "
                f"(rANS), PSNR over the whole image, the object mask and the background of the "
                f"{summary['config']['dataset']} val split",
                "results": {"codec_id": [], "lmbda": [], **{m: [] for m in METRICS}, "train_seconds": []},
            },
        )
        res = entry["results"]
        res["codec_id"].append(codec.codec_id)
        res["lmbda"].append(codec.lmbda)
        res["train_seconds"].append(summary["train_seconds"])
        for metric in METRICS:
            res[metric].append(summary["val"][metric])
    for entry in out.values():
        res = entry["results"]
        order = sorted(range(len(res["bpp"])), key=lambda i: res["bpp"][i])
        entry["results"] = {k: [v[i] for i in order] for k, v in res.items()}
    return out


def write_results(profile: str, model: str | None = None) -> list[Path]:
    """Write ``results_dir(profile)/training/<family>.json`` for every family trained; returns the paths."""
    codecs = [c for c in trained_codecs(profile) if model is None or c.model == model]
    folder = results_dir(profile) / "training"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for family, entry in family_results(codecs).items():
        paths.append(write_json(folder / f"{family}.json", entry))
    return paths


def results_by_loss(profile: str, model: str) -> dict[str, dict[str, Any]]:
    """The training results of ``model``'s codecs by their loss (as the files record it)."""
    out = {}
    for path in sorted((results_dir(profile) / "training").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        identity = codec_identity(body)
        if identity["model"] == model and identity["loss"]:
            out[identity["loss"]] = {**body, "method": identity["method"]}
    return out


def read_results(profile: str, family: str) -> dict[str, Any]:
    """One family's results JSON as written by :func:`write_results`."""
    path = results_dir(profile) / "training" / f"{family}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no training results {path}: train the codecs first (icm train --profile {profile})")
    return json.loads(path.read_text(encoding="utf-8"))


def region_bd_psnr(profile: str, model: str = "tcm-tiny") -> dict[str, float]:
    """The object codec against the MSE codec at equal bpp: BD-PSNR over the object, background and whole image.

    Returns:
        ``object``, ``background``, ``whole`` in dB (positive: the object codec is better),
        and ``bpp_overlap``: the bpp interval both sweeps cover.
    """
    write_results(profile, model)
    found = results_by_loss(profile, model)
    missing = [loss for loss in ("mse", "object") if loss not in found]
    if missing:
        raise FileNotFoundError(
            f"no training results of {model} with the {' or '.join(missing)} loss at profile {profile}: "
            f"train them first (icm train --profile {profile})"
        )
    anchor, test = found["mse"]["results"], found["object"]["results"]
    overlap = (max(min(anchor["bpp"]), min(test["bpp"])), min(max(anchor["bpp"]), max(test["bpp"])))
    return {
        "object": bd_psnr(anchor, test, "object_psnr"),
        "background": bd_psnr(anchor, test, "background_psnr"),
        "whole": bd_psnr(anchor, test, "psnr"),
        "bpp_overlap": list(overlap),
    }


def training_times(params: dict[str, Any]) -> dict[str, Any]:
    """Training wall and CPU seconds (summed over resumed sessions) of the base and every codec of the sweeps,
    and the seconds of their final validations."""
    from icm_lib.training.loop import SUMMARY
    from icm_lib.training.sweep import sweep_runs

    summaries = {}
    for label, folder in sweep_runs(params).items():
        path = Path(folder) / SUMMARY
        summaries[label] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    done = [s for s in summaries.values() if s is not None]
    return {
        "seconds": {label: s and s["train_seconds"] for label, s in summaries.items()},
        "total_seconds": sum(s["train_seconds"] for s in done),
        # CPU time of the training steps: the wall time of one free core, whatever else shared the machine
        "total_cpu_seconds": sum(s.get("train_cpu_seconds", math.nan) for s in done),
        "validation_seconds": sum(s["val"].get("seconds", math.nan) for s in done),
        "runs_finished": len(done),
        "runs": len(summaries),
    }
