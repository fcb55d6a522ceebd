"""Figures of notebook 01: images with their object masks (Eq. (3)'s m) overlaid,
and the distribution of the object area per image. Both are drawn from the
files on disk (images, masks), so they can be redrawn at any time."""

from __future__ import annotations

import cv2
import matplotlib.pyplot as plt
import numpy as np

from icm_lib.data.layout import DatasetLayout


def overlay_mask(image: np.ndarray, mask: np.ndarray, colour=(255, 40, 40), opacity: float = 0.45) -> np.ndarray:
    """``image`` (HxWx3 uint8) tinted with ``colour`` where ``mask`` is set, the mask's outline drawn fully."""
    out = image.astype(np.float32)
    inside = mask > 0
    out[inside] = (1 - opacity) * out[inside] + opacity * np.asarray(colour, np.float32)
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, 1)
    return out


def plot_mask_examples(layout: DatasetLayout, split: str = "val", n: int = 8, columns: int = 4):
    """Grid of the first ``n`` images of a split with their masks overlaid; titled with the object area."""
    files = layout.image_files(split)[:n]
    rows = max(1, int(np.ceil(len(files) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path in zip(axes.ravel(), files):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
        mask = cv2.imread(str(layout.masks(split) / f"{path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        ax.imshow(overlay_mask(image, mask))
        ax.set_title(f"{path.stem}: {100 * np.count_nonzero(mask) / mask.size:.1f}% object", fontsize=8)
    fig.suptitle(f"Object masks of {layout.name} ({split}): union of instance regions, Eq. (3)")
    fig.tight_layout()
    return fig


def plot_object_area_histogram(statistics: dict[str, dict], bins: int = 30):
    """Histogram of the per-image object fraction, one series per dataset (``{name: mask_statistics(...)}``)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    edges = np.linspace(0, 1, bins + 1)
    for name, stats in statistics.items():
        label = f"{name} (mean {100 * stats['mean']:.1f}%, median {100 * stats['median']:.1f}%)"
        ax.hist(np.asarray(stats["object_fraction"]), bins=edges, alpha=0.55, label=label, density=True)
    ax.set_xlabel("fraction of pixels inside the object mask")
    ax.set_ylabel("density of images")
    ax.set_title("Object area per image")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
