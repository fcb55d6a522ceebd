"""BD-rate at equal accuracy: the bits one codec saves over another at the same mAP.

The paper reports Bjontegaard-delta rates of its object codec against the MSE
codec and the classical codecs, with mAP in place of PSNR. This module computes
them with the maintained ``bjontegaard`` package (``bd_rate(rate_anchor,
metric_anchor, rate_test, metric_test, method)``; Akima interpolation by
default, as in its README) and tabulates every pair of curves.

A BD-rate needs a mAP that rises with the rate. mAP curves of small detectors
are noisy, so a curve that is not strictly increasing gives NaN with the reason
spelled out, unless ``drop_dominated`` keeps only the points no lower-rate point
beats (the rate-accuracy Pareto front); the dropped points are named in the
reason. Curves with fewer than ``min_points`` points (VCEG: 4) also give NaN.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from icm_lib.io import write_atomic, write_json


@dataclass
class BDRate:
    """One BD-rate: percent bits of ``test`` relative to ``anchor`` at equal metric (negative = saves bits)."""

    value: float  # percent; NaN when it cannot be computed
    reason: str = ""  # why it is NaN, or a caveat (points dropped, small overlap)
    notes: list[str] = field(default_factory=list)


@dataclass
class Curve:
    """A rate-accuracy curve: bits per pixel and the metric (mAP) at each codec setting."""

    bpp: list[float]
    metric: list[float]


def prepare_curve(
    curve: Curve, min_points: int = 4, drop_dominated: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sort a curve by rate and check it is usable for BD-rate.

    Returns:
        ``(bpp, metric, notes)`` sorted by bpp.

    Raises:
        ValueError: with the reason the curve cannot give a BD-rate.
    """
    bpp = np.asarray(curve.bpp, dtype=float)
    metric = np.asarray(curve.metric, dtype=float)
    if bpp.shape != metric.shape:
        raise ValueError(f"{len(bpp)} rates but {len(metric)} metric values")
    keep = np.isfinite(bpp) & np.isfinite(metric)
    if not np.all(bpp[keep] > 0):
        raise ValueError("rates must be positive")
    notes = [f"{int((~keep).sum())} point(s) without a value dropped"] if not keep.all() else []
    order = np.argsort(bpp[keep], kind="stable")
    bpp, metric = bpp[keep][order], metric[keep][order]
    if drop_dominated:
        front = _pareto_front(metric)
        if len(front) < len(metric):
            notes.append(
                f"{len(metric) - len(front)} dominated point(s) dropped (bpp {', '.join(f'{b:.3g}' for b in np.delete(bpp, front))})"
            )
        bpp, metric = bpp[front], metric[front]
    elif np.any(np.diff(metric) <= 0):
        raise ValueError("mAP does not rise strictly with bpp")
    if len(bpp) < min_points:
        raise ValueError(f"{len(bpp)} usable point(s), fewer than {min_points}")
    return bpp, metric, notes


def _pareto_front(metric: np.ndarray) -> list[int]:
    """Indices (of a rate-sorted curve) whose metric beats every lower-rate point."""
    front, best = [], -math.inf
    for i, value in enumerate(metric):
        if value > best:
            front.append(i)
            best = value
    return front


def bd_rate(
    anchor: Curve, test: Curve, method: str = "akima", min_points: int = 4, drop_dominated: bool = False
) -> BDRate:
    """Bjontegaard-delta rate of ``test`` against ``anchor`` at equal metric, in percent.

    Never raises for a bad curve: returns ``BDRate(nan, reason)`` instead.
    """
    try:
        rate_a, metric_a, notes_a = prepare_curve(anchor, min_points, drop_dominated)
        rate_t, metric_t, notes_t = prepare_curve(test, min_points, drop_dominated)
    except ValueError as err:
        return BDRate(math.nan, str(err))
    notes = [f"anchor: {n}" for n in notes_a] + [f"test: {n}" for n in notes_t]
    if max(metric_a.min(), metric_t.min()) >= min(metric_a.max(), metric_t.max()):
        return BDRate(math.nan, "the curves share no mAP range", notes)
    from bjontegaard import bd_rate as _bd_rate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = _bd_rate(rate_a, metric_a, rate_t, metric_t, method=method, require_matching_points=False)
    notes += [str(w.message) for w in caught]
    return BDRate(float(value), "; ".join(notes), notes)


def bd_rate_table(curves: dict[str, Curve], anchor: str | None = None, **kwargs) -> dict:
    """BD-rate of every curve (row) against every other (column) as the reference.

    Row ``anchor`` (e.g. the object codec) comes first, so its row reads as the
    paper's headline: the bits it saves against each other codec.

    Returns:
        ``{"rows", "columns", "bd_rate": [[percent|None]], "reasons": [[str]]}``;
        the diagonal is None with an empty reason.
    """
    names = list(curves)
    if anchor is not None:
        if anchor not in curves:
            raise ValueError(f"anchor {anchor!r} is not one of the curves {names}")
        names = [anchor] + [n for n in names if n != anchor]
    values, reasons = [], []
    for row in names:
        cells = [bd_rate(curves[col], curves[row], **kwargs) if col != row else BDRate(math.nan) for col in names]
        values.append([c.value if math.isfinite(c.value) else None for c in cells])
        reasons.append([c.reason for c in cells])
    return {"rows": names, "columns": names, "bd_rate": values, "reasons": reasons}


def table_markdown(table: dict, title: str = "") -> str:
    """A markdown table: row codec's BD-rate (%) against the column codec; reasons as footnotes."""
    cols = table["columns"]
    lines = ([f"**{title}**", ""] if title else []) + [
        "| BD-rate (%) of row vs column | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    footnotes: list[str] = []
    for row, values, reasons in zip(table["rows"], table["bd_rate"], table["reasons"]):
        cells = []
        for value, reason in zip(values, reasons):
            cell = "-" if value is None else f"{value:+.1f}"
            if reason and value is None:
                footnotes.append(reason)
                cell = f"n/a[{len(footnotes)}]"
            cells.append(cell)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += [""] + [f"[{i}] {text}" for i, text in enumerate(footnotes, 1)]
    return "\n".join(lines) + "\n"


def write_table(table: dict, json_path: Path, description: str, title: str = "") -> tuple[Path, Path]:
    """Write the table as JSON (``json_path``) and markdown (same stem, ``.md``), atomically."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"name": json_path.stem, "description": description, **table}
    md_path = json_path.with_suffix(".md")
    write_json(json_path, payload)
    write_atomic(md_path, table_markdown(table, title))
    return json_path, md_path
