"""Validation of a codec during and after training, from real bitstreams.

Each val image is coded with :func:`icm_lib.codec.encode` (CompressAI's rANS
coder) and decoded back; bpp is the bitstream's length in bits over the
image's pixels, not the entropy estimate. PSNR is reported over the whole
image, inside the object mask (Eq. 3) and over the background.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from icm_lib.data.layout import DatasetLayout
from icm_lib.metrics import region_psnr


def load_pair(layout: DatasetLayout, split: str, image_path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (float [3,H,W] in [0,1]) and its object mask (float [1,H,W] in {0,1})."""
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask_path = layout.masks(split) / f"{image_path.stem}.png"
    if not mask_path.is_file():
        raise FileNotFoundError(f"no object mask {mask_path}: build the masks first (icm data masks ...)")
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0
    return x, torch.from_numpy(mask)[None].float()


@torch.no_grad()
def evaluate_codec(model: nn.Module, layout: DatasetLayout, split: str = "val", max_images: int = 0) -> dict[str, float]:
    """Mean real bpp and mean PSNR (whole, object, background) over a split's images.

    The model is copied before its entropy tables are built (``update``), so a
    model in training is left as it was. PSNR is that of the decoded image rounded
    to 8 bits, as the coding evaluation saves it.

    Args:
        model: a CompressAI-interface codec (not wrapped in DDP).
        max_images: code only the first images of the split (0: all).
    Returns:
        ``bpp``, ``psnr``, ``object_psnr``, ``background_psnr`` (means over images; object and
        background over the images where that region is not empty) and ``images``.
    """
    from icm_lib.codec import decode, encode

    codec = copy.deepcopy(model).cpu().eval()  # icm_lib.codec codes on the CPU, for bit-exact decoding
    codec.update(force=True)
    files = layout.image_files(split)
    files = files[:max_images] if max_images else files
    if not files:
        raise FileNotFoundError(f"no images in {layout.images(split)}")
    rows = []
    for path in files:
        x, mask = load_pair(layout, split, path)
        data = encode(codec, x)
        x_hat = _as_tensor(decode(codec, data)).mul(255).round().div(255)  # as saved to an 8-bit PNG
        rows.append({"bpp": 8.0 * len(data) / (x.shape[-2] * x.shape[-1]), **region_psnr(x, x_hat, mask)})
    return {key: _mean(r[key] for r in rows) for key in ("bpp", "psnr", "object_psnr", "background_psnr")} | {"images": len(rows)}


def _as_tensor(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image.detach().float().cpu()
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255.0


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan
