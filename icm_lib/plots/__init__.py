"""Figures, drawn from results files so any figure can be redrawn without rerunning
an experiment. Names say what a figure shows (``map_vs_bpp_shapes_yolo.png``)."""

from __future__ import annotations

from pathlib import Path

from icm_lib.paths import figures_dir

# The learned codecs by compared method (the label their records carry): the paper's Object-MSE red and
# solid, MSE blue and dashed, the ROI codec told the mask black, the task-loss codec (Eq. 2) pink; a codec
# of any other method purple. Classical anchors are drawn thin, each figure in its own colours.
METHOD_STYLES = {
    "Object-MSE": {"color": "#d62728", "linestyle": "-", "marker": "o", "linewidth": 2.2, "zorder": 5},
    "MSE": {"color": "#1f77b4", "linestyle": "--", "marker": "s", "linewidth": 1.8, "zorder": 4},
    "ROI, Object-MSE": {"color": "black", "linestyle": "-", "marker": "D", "linewidth": 1.6, "zorder": 4},
    "task loss": {"color": "#e377c2", "linestyle": "-.", "marker": "^", "linewidth": 1.8, "zorder": 4},
}
OTHER_METHOD_STYLE = {"color": "#9467bd", "linestyle": "-.", "marker": "v", "linewidth": 1.8, "zorder": 4}


def method_style(method: str) -> dict:
    """Line style of a learned codec family by its compared method (:data:`METHOD_STYLES`)."""
    return dict(METHOD_STYLES.get(method, OTHER_METHOD_STYLE))


def save_figure(fig, name: str, folder: Path | None = None) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf`` (into ``figures/`` by default); returns both paths."""
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths
