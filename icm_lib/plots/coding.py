"""Figures of the coding evaluation, drawn from the results and decoded folders.

- :func:`coding_examples_figure`: the layout of Fig. 4 of Shindo et al. ("Image
  Coding for Machines with Object Region Learning"): the input row and the
  object-codec row, extended by the MSE codec at a similar bpp and both
  codecs' bit-allocation maps, each panel labelled with its bpp.
- :func:`region_psnr_figure`: bpp against object PSNR and background PSNR for every codec family.
- :func:`interactive_examples`: a JupyterLab widget sliding through lambdas and images.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from icm_lib.evaluate.coding.codecs import codec_identity
from icm_lib.evaluate.coding.examples import example_panels
from icm_lib.evaluate.coding.sweep import read_family_results
from icm_lib.plots import method_style

CLASSICAL_COLOURS = {
    "jpeg": "#7f7f7f",
    "webp": "#bcbd22",
    "avif": "#8c564b",
    "heic": "#9467bd",
    "jxl": "#17becf",
    "vvc": "#2ca02c",
}


def family_style(family: str, identity: dict) -> dict:
    """Line style of a codec family: a learned one by its method (:func:`icm_lib.plots.method_style`),
    an anchor (no loss) thin and dotted in its own colour."""
    if identity.get("loss") is not None:
        return method_style(identity["method"])
    return {"color": CLASSICAL_COLOURS.get(family, "black"), "linestyle": ":", "marker": ".", "linewidth": 1.2}


def region_psnr_figure(profile: str, dataset: str):
    """Rate-distortion in the object region and the background: bpp (real bitstream) vs PSNR, all codecs."""
    results = read_family_results(profile, dataset)
    if not results:
        raise FileNotFoundError(f"no coding results for {dataset} at profile {profile}: run the coding sweep first")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, key, title in zip(axes, ("object_psnr", "background_psnr"), ("Object region", "Background")):
        for family, body in sorted(results.items()):
            r = body["results"]
            style = family_style(family, codec_identity(body))
            ax.plot(r["bpp"], [np.nan if v is None else v for v in r[key]], label=family, **style)
        ax.set(
            xlabel="bits per pixel (real bitstream)", ylabel=f"{title.lower()} PSNR [dB]", title=f"{title} ({dataset})"
        )
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def coding_examples_figure(panels, title: str = "", horizontal: bool = False):
    """Fig. 4 layout: the input row, then one row per decoded codec and per bit map, columns = images.

    Args:
        panels: :class:`icm_lib.evaluate.coding.examples.ExamplePanels`.
        horizontal: transpose (rows become columns), for a single image side by side.
    """
    rows = [("input", [(image, f"{stem}") for image, stem in zip(panels.inputs, panels.stems)]), *panels.rows.items()]
    n_rows, n_cols = len(rows), len(panels.stems)
    shape = (n_cols, n_rows) if horizontal else (n_rows, n_cols)
    fig, grid = plt.subplots(*shape, figsize=(2.6 * shape[1], 2.5 * shape[0]), squeeze=False)
    axes = grid.T if horizontal else grid
    gate_rows = getattr(panels, "gate_rows", set())
    vmax = [_bits_vmax([row[j][0] for name, row in rows if name not in gate_rows]) for j in range(n_cols)]
    for i, (name, row) in enumerate(rows):
        for j, (image, label) in enumerate(row):
            ax = axes[i, j]
            if name in gate_rows:  # the encoder's learned gate: white = coded, black = switched off
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
                ax.contour(panels.masks[j] > 0, levels=[0.5], colors="cyan", linewidths=0.6)
            elif image.ndim == 2:  # a bit map, same colour scale for every codec of a column
                ax.imshow(image, cmap="magma", vmin=0, vmax=vmax[j])
                ax.contour(panels.masks[j] > 0, levels=[0.5], colors="cyan", linewidths=0.6)
            else:
                ax.imshow(image)
            ax.set_title(label, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                (ax.set_xlabel if horizontal else ax.set_ylabel)(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()) if title else None)  # the title above the grid
    return fig


def _bits_vmax(images: list[np.ndarray]) -> float:
    """The colour-scale top shared by the bit maps of a column (99th percentile, so one hot spot does not wash it out)."""
    maps = [m for m in images if m.ndim == 2]
    return max(float(np.percentile(m, 99)) for m in maps) if maps else 1.0


def interactive_examples(profile: str, layout, split: str, codecs: list, stems: list[str]):
    """A widget for JupyterLab: slide over the codecs (lambdas) and images; shows input, decoded and bit map."""
    import ipywidgets as widgets  # only for JupyterLab

    by_id = {c.id: c for c in codecs}

    def show(codec_id: str, image: int):
        panels = example_panels(profile, layout, split, [stems[image]], [by_id[codec_id]])
        fig = coding_examples_figure(panels, title=codec_id, horizontal=True)
        plt.show()
        plt.close(fig)

    codec_slider = widgets.SelectionSlider(options=list(by_id), description="codec", layout={"width": "500px"})
    image_slider = widgets.IntSlider(0, 0, len(stems) - 1, description="image")
    return widgets.interactive(show, codec_id=codec_slider, image=image_slider)
