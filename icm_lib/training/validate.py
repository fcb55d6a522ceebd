"""Validation of a codec during and after training, from real bitstreams.

Each val image is coded with :func:`icm_lib.bitstream.encode` (CompressAI's rANS
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
def evaluate_codec(
    model: nn.Module, layout: DatasetLayout, split: str = "val", max_images: int = 0, empty_images: int = 8
) -> dict[str, float]:
    """Mean real bpp and mean PSNR (whole, object, background) over a split's images, and where the bits go.

    The model is copied before its entropy tables are built (``update``), so a
    model in training is left as it was. PSNR is that of the decoded image rounded
    to 8 bits, as the coding evaluation saves it.

    Args:
        model: a CompressAI-interface codec (not wrapped in DDP).
        max_images: code only the first images of the split (0: all).
        empty_images: also code up to this many of the split's images without any object
            (those among the first ``max_images`` count), for ``empty_bpp``.
    Returns:
        ``bpp``, ``psnr``, ``object_psnr``, ``background_psnr`` (means over the first
        ``max_images`` images; object and background over the images where that region is not
        empty), ``images``; ``object_bit_share`` (bits inside the objects over all bits, entropy
        estimate, pooled over those images that hold objects) with ``object_pixel_share`` (the
        objects' share of their pixels, for comparison); ``empty_bpp`` and ``empty_images`` (mean
        real bpp over the object-free images coded; NaN when the split has none).
    """
    from icm_lib.evaluate.coding.bitmaps import bit_allocation_map

    codec = copy.deepcopy(model).cpu().eval()  # icm_lib.bitstream codes on the CPU, for bit-exact decoding
    codec.update(force=True)
    all_files = layout.image_files(split)
    files = all_files[:max_images] if max_images else all_files
    if not files:
        raise FileNotFoundError(f"no images in {layout.images(split)}")
    rows, object_bits, total_bits, object_pixels, pixels = [], 0.0, 0.0, 0, 0
    for path in files:
        x, mask = load_pair(layout, split, path)
        rows.append(_code(codec, x, mask))
        if mask.any():
            bit_map = bit_allocation_map(codec, x, mask)
            object_bits += float(bit_map.bits[mask[0].numpy() > 0].sum())
            total_bits += bit_map.total_bits
            object_pixels, pixels = object_pixels + int(mask.sum()), pixels + mask.numel()
    empty = [r["bpp"] for r in rows if math.isnan(r["object_psnr"])]
    for path in all_files[len(files) :]:
        if len(empty) >= empty_images:
            break
        x, mask = load_pair(layout, split, path)
        if not mask.any():
            empty.append(_code(codec, x, mask)["bpp"])
    return {key: _mean(r[key] for r in rows) for key in ("bpp", "psnr", "object_psnr", "background_psnr")} | {
        "images": len(rows),
        "object_bit_share": object_bits / total_bits if total_bits > 0 else math.nan,
        "object_pixel_share": object_pixels / pixels if pixels else math.nan,
        "empty_bpp": _mean(empty),
        "empty_images": len(empty),
    }


def _code(codec: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Real bpp and region PSNR of one image through the bitstream (an ROI codec codes the mask too)."""
    from icm_lib.bitstream import decode, encode
    from icm_lib.models.roi import takes_mask

    data = encode(codec, x, mask=(mask[0] > 0).float() if takes_mask(codec) else None)
    x_hat = _as_tensor(decode(codec, data)).mul(255).round().div(255)  # as saved to an 8-bit PNG
    return {"bpp": 8.0 * len(data) / (x.shape[-2] * x.shape[-1]), **region_psnr(x, x_hat, mask)}


def _as_tensor(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        return image.detach().float().cpu()
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255.0


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan
