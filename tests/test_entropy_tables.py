"""Coding tables: real rANS bits against the entropy estimate, table settings, bitstreams that must not mix."""

from __future__ import annotations

import math

import pytest
import torch
from compressai.models.base import get_scale_table

from icm_lib.bitstream import BitstreamError, decode, encode
from icm_lib.models import create, with_config
from icm_lib.models.entropy_tables import (
    RoundedEntropyBottleneck,
    RoundedGaussianConditional,
    proportional_cdf,
    scale_table,
)
from icm_lib.models.tcm import TCM_SIZES, TCMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _frequencies(cdf: torch.Tensor, length: int) -> torch.Tensor:
    return cdf[1:length].long() - cdf[: length - 1].long()


def test_proportional_cdf_is_a_valid_table_that_keeps_rare_symbols():
    pmf = torch.zeros(2, 23)
    pmf[0, 9:12] = torch.tensor([1.4e-4, 0.99975, 1.1e-4])  # a spiky hyperprior channel, 21 symbols
    pmf[1, :5] = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1])
    lengths = torch.tensor([21, 5])
    cdf = proportional_cdf(pmf, torch.full((2, 1), 1e-9), lengths, 23)
    for row, length in zip(cdf, lengths.tolist()):
        freq = _frequencies(row, length + 2)
        assert row[0] == 0 and row[length + 1] == 2**16 and freq.min() >= 1
        assert row[length + 2 :].eq(0).all()
    assert _frequencies(cdf[0], 23)[9].item() == round(1.4e-4 * 2**16)  # CompressAI's rounding leaves it 1 count
    assert (_frequencies(cdf[1], 7)[:5] - pmf[1, :5] * 2**16).abs().max() <= 1


@pytest.mark.parametrize("levels", [64, 256])
def test_proportional_rounding_never_codes_longer_than_compressai(levels):
    """Expected code length of every scale's table under its own Gaussian pmf."""
    costs = {}
    for rounding in ("compressai", "proportional"):
        gc = RoundedGaussianConditional(None, cdf_rounding=rounding)
        gc.update_scale_table(get_scale_table(0.11, 256, levels))
        cost = []
        for i, scale in enumerate(gc.scale_table.tolist()):
            n = gc._cdf_length[i].item()
            values = torch.arange(n - 2, dtype=torch.float64) + gc._offset[i].item()
            normal = torch.distributions.Normal(0.0, scale)
            p = normal.cdf(values + 0.5) - normal.cdf(values - 0.5)
            freq = _frequencies(gc._quantized_cdf[i], n)[:-1].double()
            cost.append(-(p * torch.log2(freq / 2**16)).sum().item())
        costs[rounding] = torch.tensor(cost)
    assert (costs["proportional"] <= costs["compressai"] + 1e-6).all()


def _gaussian_latents(n: int = 12000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents drawn from the Gaussians a hyperprior predicts; scales log-uniform over [0.12, 6] (low rates)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.empty(n).uniform_(math.log(0.12), math.log(6.0), generator=g))
    means = torch.randn(n, generator=g) * 3
    y = means + scales * torch.randn(n, generator=g)
    return y.reshape(1, 1, 1, n), scales.reshape(1, 1, 1, n), means.reshape(1, 1, 1, n)


def _gaussian_bits_over_estimate(gc) -> tuple[float, float]:
    y, scales, means = _gaussian_latents()
    estimate = -torch.log2(gc(y, scales, means, training=False)[1]).sum().item()
    strings = gc.compress(y, gc.build_indexes(scales), means)
    return 8 * len(strings[0]) - estimate, estimate


def test_tcm_tiny_codes_gaussian_latents_within_its_estimate():
    """The y coder of tcm-tiny pays little more than -log2 p: the fixed rANS flush and < 0.002 bit/symbol."""
    model = create("tcm-tiny")
    model.update(force=True)
    over_fine, estimate = _gaussian_bits_over_estimate(model.gaussian_conditional)
    coarse = RoundedGaussianConditional(None)
    coarse.update_scale_table(get_scale_table())  # CompressAI's 64 scales, the published TCM's
    over_coarse, _ = _gaussian_bits_over_estimate(coarse)
    n = _gaussian_latents()[0].numel()
    assert estimate > 10000
    assert over_fine < 64 + 0.002 * n, (over_fine, estimate)
    assert over_coarse > over_fine + 0.003 * n  # what the finer table buys


def test_proportional_rounding_codes_a_spiky_hyperprior_near_its_estimate():
    """A hyperprior channel like the demo codec's: p(0) = 0.99975, p(+-1) ~ 1e-4, twenty unused tail symbols."""
    from compressai.ans import RansEncoder

    pmf = torch.zeros(1, 23)
    pmf[0, 9:12] = torch.tensor([1.4e-4, 0.99975, 1.1e-4])
    length, tail = torch.tensor([21]), torch.full((1, 1), 1e-9)
    g = torch.Generator().manual_seed(0)
    symbols = torch.multinomial(pmf[0, :21], 20000, replacement=True, generator=g)
    symbols[:40] = 9  # an image with more -1s than the density expects (as in the demo codec's z)
    estimate = -torch.log2(pmf[0, symbols]).sum().item()
    over = {}
    for rounding in ("compressai", "proportional"):
        eb = RoundedEntropyBottleneck(1, cdf_rounding=rounding)
        cdf = eb._pmf_to_cdf(pmf, tail, length, 23)
        coded = RansEncoder().encode_with_indexes(
            (symbols - 10).tolist(), [0] * len(symbols), cdf.tolist(), [23], [-10]
        )
        over[rounding] = 8 * len(coded) - estimate
    assert over["proportional"] < 64 + 0.002 * estimate, over  # the flush, and little else
    assert over["compressai"] > over["proportional"] + 100, over  # each -1 costs 16 bits instead of 12.8


def test_table_settings_published_and_tiny():
    assert (TCMConfig().scale_levels, TCMConfig().cdf_rounding) == (64, "compressai")  # conformance needs these
    assert all(
        "scale_levels" not in TCM_SIZES[size] and "cdf_rounding" not in TCM_SIZES[size]
        for size in ("small", "medium", "large")
    )
    assert torch.equal(scale_table(64), get_scale_table())
    model = create("tcm-tiny")
    model.update(force=True)
    assert len(model.gaussian_conditional.scale_table) == 256
    assert model.gaussian_conditional.cdf_rounding == model.entropy_bottleneck.cdf_rounding == "proportional"
    with pytest.raises(ValueError, match="cdf_rounding"):
        create("tcm-tiny", cdf_rounding="nearest")


def test_bitstreams_of_other_tables_are_refused():
    torch.manual_seed(0)
    fine = create("tcm-tiny").eval()
    fine.update(force=True)
    coarse = with_config(fine, scale_levels=64, cdf_rounding="compressai")
    assert len(coarse.gaussian_conditional.scale_table) == 64
    image = torch.rand(3, 64, 80)
    for encoder, decoder in ((fine, coarse), (coarse, fine)):
        data = encode(encoder, image)
        assert decode(encoder, data).shape == image.shape
        with pytest.raises(BitstreamError, match="coding tables"):
            decode(decoder, data)
