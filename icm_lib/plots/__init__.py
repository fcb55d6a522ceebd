"""Figures, drawn from results files so any figure can be redrawn without rerunning
an experiment. Names say what a figure shows (``map_vs_bpp_shapes_yolo.png``)."""

from __future__ import annotations

from pathlib import Path

from icm_lib.paths import figures_dir


def save_figure(fig, name: str, folder: Path | None = None) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf`` (into ``figures/`` by default); returns both paths."""
    folder = Path(folder) if folder is not None else figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths
