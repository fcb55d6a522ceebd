"""Bit-allocation maps: they add up to the entropy estimate and split it between objects and background."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icm_lib.evaluate.coding.bitmaps import BitMap, bit_allocation_map
from icm_lib.models import create


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create("bmshj2018-hyperprior", N=8, M=16).eval()


def _entropy_bits(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        likelihoods = model(x)["likelihoods"]
    return float(sum(-torch.log2(v.double()).sum() for v in likelihoods.values()))


def test_map_sums_to_the_entropy_estimate(model):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    bitmap = bit_allocation_map(model, image)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    assert bitmap.bits.shape == (64, 128)
    assert bitmap.strides == {"y": 16, "z": 64}
    assert bitmap.bits.sum() == pytest.approx(_entropy_bits(model, x), rel=1e-9)
    assert bitmap.total_bits == pytest.approx(bitmap.bits.sum(), rel=1e-9)
    assert bitmap.bpp == pytest.approx(bitmap.total_bits / (64 * 128))


def test_padding_bits_are_accounted_for(model):
    image = np.random.default_rng(1).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    bitmap = bit_allocation_map(model, image)
    assert bitmap.bits.shape == (70, 100)
    assert bitmap.padding_bits > 0  # y rows/columns of padding alone
    assert bitmap.bits.sum() + bitmap.padding_bits == pytest.approx(bitmap.total_bits)


class _KnownLikelihoods(torch.nn.Module):
    """Stands in for a codec: y at stride 16 costs 1 bit per channel, 10 in its top-left element; z is free."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        h, w = x.shape[-2] // 16, x.shape[-1] // 16
        y = torch.full((1, 2, h, w), 0.5)
        y[0, 0, 0, 0] = 2.0**-9  # 9 + 1 bits over the two channels
        return {"x_hat": x, "likelihoods": {"y": y, "z": torch.ones(1, 1, h // 4, w // 4)}}


def test_the_bits_land_on_the_pixels_their_element_covers():
    bitmap = bit_allocation_map(_KnownLikelihoods(), np.zeros((64, 128, 3), np.uint8))
    assert bitmap.strides == {"y": 16, "z": 64}
    assert np.allclose(bitmap.bits[:16, :16], 10 / 256)
    assert np.allclose(bitmap.bits[16:, :], 2 / 256) and np.allclose(bitmap.bits[:, 16:], 2 / 256)
    assert bitmap.latent_bits == {"y": pytest.approx(10 + 2 * 31), "z": 0.0}


def test_object_share():
    bits = np.zeros((4, 4))
    bits[:2] = 3.0  # 24 bits on the top half
    bits[2:] = 1.0  # 8 bits below
    bitmap = BitMap(bits, {"y": 30.0, "z": 2.0}, {"y": 1, "z": 2})
    mask = np.zeros((4, 4), np.uint8)
    mask[:2] = 255
    assert bitmap.object_share(mask) == pytest.approx(24 / 32)
    assert bitmap.object_share(np.zeros((4, 4))) == 0.0


def test_grid_share_bounds():
    """A 16x16 object on the grid: all its block's bits are inside it. Shifted by 8 pixels it touches four
    blocks, a quarter of each: spent evenly, a quarter of the bits land inside it; in proportion, the same."""
    from icm_lib.evaluate.coding.bitmaps import grid_share_bounds

    aligned = np.zeros((64, 64))
    aligned[16:32, 16:32] = 1
    shifted = np.zeros((64, 64))
    shifted[8:24, 8:24] = 1
    assert grid_share_bounds([aligned]) == {"even": 1.0, "proportional": 1.0, "pixels": 256 / 4096}
    assert grid_share_bounds([shifted])["even"] == pytest.approx(0.25)
    assert grid_share_bounds([shifted])["proportional"] == pytest.approx(0.25)
    edge = np.zeros((64, 64))  # a whole block, and one column (16 pixels) of the next
    edge[0:16, 0:17] = 1
    bounds = grid_share_bounds([edge, np.zeros((20, 20))])
    assert bounds["even"] == pytest.approx((256 / 256 + 16 / 256) / 2)
    assert bounds["proportional"] == pytest.approx((256**2 + 16**2) / 256 / (256 + 16))
    assert bounds["pixels"] == pytest.approx(272 / (4096 + 400))
