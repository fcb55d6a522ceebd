"""Accuracy against bits per pixel, in the layout of the paper's Figs. 2-3.

One panel per detector mode (pre-trained, fine-tuned) and one row per metric;
one curve per codec family (the object codec in red, the MSE codec in blue,
classical anchors in muted colours); the detector's accuracy on uncompressed
images as a dotted horizontal line. Detectors fine-tuned with several seeds: the
line is their mean, each seed's score a faint dot beside it. Drawn from the results files of
:mod:`icm_lib.evaluate.recognition.results`, so a figure is redrawn without
rerunning anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from icm_lib.evaluate.coding.codecs import codec_identity
from icm_lib.evaluate.recognition.results import MODES, read_curves, read_uncompressed
from icm_lib.plots import method_style

METRIC_LABELS = {
    "map": "bbox mAP@[.5:.95]",
    "map50": "bbox mAP50",
    "segm_map": "mask mAP@[.5:.95]",
    "segm_map50": "mask mAP50",
}
CLASSICAL_COLOURS = ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:olive", "tab:gray", "tab:cyan")


def family_styles(identities: dict[str, dict]) -> dict[str, dict]:
    """Matplotlib line styles per family (``identities``: family -> its codec's ``method`` and ``loss``, the
    loss None for an anchor), stable across panels: a learned codec by its method
    (:func:`icm_lib.plots.method_style`), the anchors in turn through :data:`CLASSICAL_COLOURS`."""
    styles, classical = {}, iter(CLASSICAL_COLOURS * 3)
    for family in sorted(identities):
        identity = identities[family]
        if identity.get("loss") is None:
            styles[family] = {"color": next(classical), "linewidth": 1.2, "marker": "."}
        else:
            styles[family] = method_style(identity["method"])
    return styles


def plot_map_vs_bpp(folder: Path, metrics: tuple[str, ...] = ("map",), title: str = ""):
    """Figure of ``metrics`` against bpp for every curve in a recognition results folder.

    Returns:
        The matplotlib figure (rows: metrics, columns: pre-trained / fine-tuned when present).
    """
    bodies, clean = read_curves(folder), read_uncompressed(folder)
    modes = [m for m in MODES if any(name.endswith(f"({m})") for name in bodies)] or ["pretrained"]
    metrics = [m for m in metrics if any(m in b["results"] for b in bodies.values())] or list(metrics[:1])
    identities = {name.split(" (")[0]: codec_identity(body) for name, body in bodies.items()}
    families = sorted(identities)
    styles = family_styles(identities)
    fig, axes = plt.subplots(
        len(metrics),
        len(modes),
        figsize=(4.6 * len(modes), 3.6 * len(metrics)),
        squeeze=False,
        sharey="row",
        sharex=True,
    )
    for r, metric in enumerate(metrics):
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            seeds = set()
            for family in families:
                body = bodies.get(f"{family} ({mode})")
                if body is not None and metric in body["results"]:
                    res = body["results"]
                    values = [math.nan if v is None else v for v in res[metric]]
                    ax.plot(res["bpp"], values, label=family, **styles[family])
                    for bpp, scores in zip(res["bpp"], res.get(f"{metric}_by_seed", [])):
                        ax.plot([bpp] * len(scores), scores, ".", color=styles[family]["color"], alpha=0.35, ms=4)
                        seeds.add(len(scores))
            if math.isfinite(clean.get(metric, math.nan)):
                ax.axhline(clean[metric], color="black", ls=":", lw=1.2, label="uncompressed")
            spread = f", mean of {max(seeds)} seeds (dots: each)" if seeds else ""
            ax.set_title(f"{'fine-tuned' if mode == 'finetuned' else 'pre-trained'} detector{spread}", fontsize=10)
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
