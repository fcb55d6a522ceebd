"""Where the bits go: bit-allocation maps of a learned codec and the share inside objects.

Fig. 4 of Shindo et al. ("Image Coding for Machines with Object Region
Learning") shows that the Object-MSE codec spends its bits on the objects. Here
that is measured: each latent element costs ``-log2 p`` bits under the model's
entropy model (the likelihoods of CompressAI's ``forward`` in eval mode), the
cost is summed over channels and spread evenly over the pixels the element
covers (stride 16 for ``y`` and 64 for ``z`` in TCM; derived from the shapes),
and the map is compared with the object mask of Eq. (3).

These are entropy estimates, not the real bitstream (whose size adds the rANS
overhead and the header); the real bpp is in the coding records. The input is
edge-padded to a multiple of the coarsest stride (:data:`PAD_MULTIPLE`), as
the codec must; an element's bits are spread over the real pixels it covers,
and elements that cover padding alone are left off the map (``padding_bits``),
so the map sums exactly to the estimate for sizes that are multiples of 64.
The share inside the objects is taken of all the bits, padding included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PAD_MULTIPLE = 64  # TCM and the CompressAI hyperpriors downsample z by 64


@dataclass
class BitMap:
    """Bits per pixel of one image under a learned codec's entropy model."""

    bits: np.ndarray  # HxW, bits attributed to each pixel (y and z together)
    latent_bits: dict  # total -log2 likelihood per latent ("y", "z"), padding included
    strides: dict  # pixels per latent element along each side, per latent

    @property
    def total_bits(self) -> float:
        """The entropy estimate ``-sum log2 p`` over all latent elements."""
        return float(sum(self.latent_bits.values()))

    @property
    def bpp(self) -> float:
        """Estimated bits per pixel (on the image's own size)."""
        return self.total_bits / self.bits.size

    @property
    def padding_bits(self) -> float:
        """Bits of latent elements that cover only the padding (not on the map)."""
        return self.total_bits - float(self.bits.sum())

    def object_share(self, object_mask: np.ndarray) -> float:
        """Fraction of all the bits spent inside the object mask (nonzero = object); NaN without bits."""
        total = self.total_bits
        return float(self.bits[object_mask > 0].sum()) / total if total > 0 else float("nan")


def _to_batch(image) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] from HxWx3 uint8 or a [3,H,W] / [1,3,H,W] float tensor."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    return image.float().reshape(1, *image.shape[-3:])


@torch.no_grad()
def bit_allocation_map(model: torch.nn.Module, image, object_mask=None) -> BitMap:
    """Bit-allocation map: ``-log2`` likelihood of each latent element, summed over channels,
    spread over the pixels it covers, ``y`` and ``z`` added.

    Args:
        model: a CompressAI-style codec whose ``forward`` returns ``likelihoods``; put in eval mode.
        image: HxWx3 uint8 array or [3,H,W] / [1,3,H,W] float tensor in [0, 1].
        object_mask: HxW (nonzero = object), or [1,H,W] / [1,1,H,W]; given to an ROI codec
            (:func:`icm_lib.models.roi.takes_mask`), which needs it, and ignored by the others. The ROI
            codec's mask bytes are side information, not on the map.
    Returns:
        :class:`BitMap` at the image's size.
    """
    from icm_lib.models.roi import takes_mask

    model.eval()
    device = next(model.parameters()).device
    x = _to_batch(image).to(device)
    h, w = x.shape[-2:]
    pad = (0, -w % PAD_MULTIPLE, 0, -h % PAD_MULTIPLE)
    x = F.pad(x, pad, mode="replicate")
    if takes_mask(model):
        if object_mask is None:
            raise ValueError("an ROI codec's bit map needs the object mask it codes")
        m = torch.as_tensor(np.asarray(object_mask) if not torch.is_tensor(object_mask) else object_mask)
        likelihoods = model(x, F.pad((m.reshape(1, 1, h, w) > 0).float().to(device), pad))["likelihoods"]
    else:
        likelihoods = model(x)["likelihoods"]
    inside = torch.zeros(x.shape[-2:], dtype=torch.float64)
    inside[:h, :w] = 1.0  # real pixels; the rest is padding
    bits = torch.zeros(x.shape[-2:], dtype=torch.float64)
    latent_bits, strides = {}, {}
    for name, lik in likelihoods.items():
        per_element = -torch.log2(lik.double().cpu()).sum(1)[0]  # (h', w'): summed over channels
        stride = x.shape[-2] // per_element.shape[-2]
        if stride * per_element.shape[-2] != x.shape[-2] or stride * per_element.shape[-1] != x.shape[-1]:
            raise ValueError(f"latent {name} of shape {tuple(lik.shape)} does not tile the input {tuple(x.shape)}")
        covered = F.avg_pool2d(inside[None, None], stride)[0, 0] * stride**2  # real pixels per element
        per_pixel = torch.where(covered > 0, per_element / covered.clamp(min=1), torch.zeros_like(per_element))
        bits += torch.kron(per_pixel, torch.ones(stride, stride, dtype=torch.float64)) * inside
        latent_bits[name], strides[name] = float(per_element.sum()), stride
    return BitMap(bits[:h, :w].numpy(), latent_bits, strides)


def grid_share_bounds(masks, stride: int = 16) -> dict[str, float]:
    """How much of a codec's bits a bit map can put inside the objects, given its latent grid: each latent
    element's bits spread over its ``stride`` x ``stride`` pixels (:func:`bit_allocation_map`), so a block on
    an object's border counts partly as background whatever the codec does. Pooled over ``masks`` (HxW,
    nonzero = object; images without objects add nothing), for a codec that spends its bits

    - ``even``: only on the blocks touching an object, the same in each (what an ROI codec told the mask
      comes close to), and
    - ``proportional``: on each block in proportion to its object pixels (the most a grid allows, short of
      all bits on blocks wholly inside objects),

    with ``pixels``, the objects' share of the pixels. z's coarser grid is left out (its bits are few)."""
    even_in = even_blocks = prop_in = prop_all = objects = pixels = 0.0
    for mask in masks:
        m = (np.asarray(mask) > 0).astype(np.float64)
        h, w = m.shape
        m = np.pad(m, ((0, -h % stride), (0, -w % stride)))
        per_block = m.reshape(m.shape[0] // stride, stride, m.shape[1] // stride, stride).sum((1, 3))
        touching = per_block[per_block > 0]
        even_in += float((touching / stride**2).sum())
        even_blocks += touching.size
        prop_in += float((touching**2 / stride**2).sum())
        prop_all += float(touching.sum())
        objects, pixels = objects + float(m.sum()), pixels + h * w
    nan = float("nan")
    return {
        "even": even_in / even_blocks if even_blocks else nan,
        "proportional": prop_in / prop_all if prop_all else nan,
        "pixels": objects / pixels if pixels else nan,
    }
