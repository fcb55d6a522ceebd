"""Image-quality metrics over the whole image, the object region and the background.

The object region is the binary mask of Eq. (3); the background is its
complement. PSNR is on 8-bit values (peak 255) from images in [0, 1]. Two codecs'
rate-distortion curves compare by :func:`bd_psnr`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch


def masked_mse(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per batch item over the pixels where ``mask`` is 1 (all pixels when None).

    Args:
        x, x_hat: (B, C, H, W) images in [0, 1].
        mask: (B, 1, H, W) in {0, 1}, or None.
    Returns:
        (B,) MSE; NaN for an item whose region is empty.
    """
    err = (x - x_hat).pow(2)
    if mask is None:
        return err.flatten(1).mean(1)
    weight = mask.expand_as(err)
    return (err * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for an MSE on [0, 1] images (inf when the MSE is 0, NaN when undefined)."""
    if math.isnan(mse):
        return math.nan
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)


def region_psnr(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """PSNR of one image over the whole image, inside the object mask and outside it.

    Args:
        x, x_hat: (C, H, W) or (1, C, H, W) images in [0, 1].
        mask: (H, W), (1, H, W) or (1, 1, H, W), nonzero = object.
    Returns:
        ``psnr``, ``object_psnr``, ``background_psnr`` (NaN where a region is empty) and
        ``object_mse``, ``background_mse`` for averaging over a dataset.
    """
    x = x.reshape(1, *x.shape[-3:]).float()
    x_hat = x_hat.reshape(1, *x_hat.shape[-3:]).float().clamp(0, 1)
    m = (mask.reshape(1, 1, *x.shape[-2:]) > 0).float()
    mse = masked_mse(x, x_hat).item()
    obj = masked_mse(x, x_hat, m).item()
    bg = masked_mse(x, x_hat, 1 - m).item()
    return {
        "psnr": psnr_from_mse(mse),
        "object_psnr": psnr_from_mse(obj),
        "background_psnr": psnr_from_mse(bg),
        "mse": mse,
        "object_mse": obj,
        "background_mse": bg,
    }


def region_psnr_uint8(image: np.ndarray, decoded: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """:func:`region_psnr` for HxWx3 uint8 arrays and an HxW mask (as read from PNG files)."""
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0  # noqa: E731
    return region_psnr(to_tensor(image), to_tensor(decoded), torch.from_numpy(mask))


def bd_psnr(anchor: dict[str, list], test: dict[str, list], metric: str) -> float:
    """BD-PSNR (dB) of ``test`` over ``anchor`` on one PSNR metric, at equal bpp.

    Points are taken in bpp order (a sweep's lambdas need not give rising rates
    in a short run); NaN when a curve has fewer than 2 points or repeats a rate.
    """
    import bjontegaard as bd

    curves = []
    for curve in (anchor, test):
        points = sorted(zip(curve["bpp"], curve[metric]))
        rates = [p[0] for p in points]
        if len(points) < 2 or any(b <= a for a, b in zip(rates, rates[1:])):
            return math.nan
        curves += [rates, [p[1] for p in points]]
    with warnings.catch_warnings():  # little overlap in bpp is reported, not fatal, as bjontegaard does
        warnings.simplefilter("ignore")
        return float(bd.bd_psnr(*curves, method="pchip", require_matching_points=False))
