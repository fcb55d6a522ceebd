"""Coding tables of CompressAI's entropy models: the Gaussian scale table and pmf-to-CDF rounding.

The rANS coder codes a symbol with an integer frequency out of 2^16 from a table
computed by ``update()``; the entropy estimate ``-log2 p`` of ``forward`` is the
limit the real bits approach. Two table choices decide how close they come:

- The scale table. ``GaussianConditional`` has one CDF per scale of a table and
  codes a latent of predicted scale s with the first table scale >= s.
  CompressAI's table has 64 scales log-spaced over [0.11, 256]: neighbours
  differ by a factor r = 1.13. Coding N(0, s^2) with scale s(1 + d) costs
  about d^2 nats more per symbol (the KL divergence), so with d uniform in
  [0, r - 1) the loss averages (r - 1)^2 / 3 nats, 0.008 bit/symbol (up to
  0.024); 256 scales (r = 1.031) cut it to 0.0005 bit/symbol.
- The rounding of a pmf to frequencies. CompressAI's ``pmf_to_quantized_cdf``
  rounds p * 2^16 and gives every symbol rounded to 0 one count taken from
  the least probable symbol that has more than one. A spiky hyperprior
  channel (p(0) = 0.9998, p(+-1) = 1e-4, twenty tail symbols) loses all its
  +-1 counts that way: each +-1 then costs 16 bits instead of 13. The
  ``"proportional"`` rounding solves the table's own coding problem instead:
  minimise the expected cost  -sum_i p_i log2(f_i / 2^16)  subject to
  sum_i f_i = 2^16, f_i >= 1, whose solution (before rounding to integers) is
  f_i = max(1, lambda * 2^16 * p_i) with lambda <= 1 set by the sum
  (water-filling): rare symbols keep a count each and the rest pay for them
  in proportion to their probability.

CompressAI's choices (64 scales, ``"compressai"`` rounding) are the published
TCM's and stay the defaults: its bitstreams depend on them byte for byte.
A fixed cost that no table removes: each rANS string ends with the coder's
64-bit state, so a string costs 32 to 64 bits more than its symbols.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import SCALES_MAX, SCALES_MIN, get_scale_table
from torch import Tensor

CDF_ROUNDINGS = ("compressai", "proportional")


def scale_table(levels: int) -> Tensor:
    """``levels`` scales log-spaced over CompressAI's [0.11, 256]; 64 is CompressAI's own table."""
    if levels < 2:
        raise ValueError(f"a scale table needs at least 2 levels, not {levels}")
    return get_scale_table(SCALES_MIN, SCALES_MAX, levels)


def proportional_cdf(
    pmf: Tensor, tail_mass: Tensor, pmf_length: Tensor, max_length: int, precision: int = 16
) -> Tensor:
    """Quantized CDFs that minimise the expected code length (see the module docstring).

    Args:
        pmf: (rows, max_length) probabilities; row i uses its first ``pmf_length[i]``.
        tail_mass: (rows, 1) probability of the escape symbol that ends each row.
        pmf_length, max_length, precision: as in CompressAI's ``EntropyModel._pmf_to_cdf``.
    Returns:
        (rows, max_length + 2) int32: row i is 0, the cumulative frequencies of its
        ``pmf_length[i] + 1`` symbols (escape last, ending at 2^precision), then zeros.
    """
    total = 2**precision
    lengths = pmf_length.long().cpu() + 1
    prob = torch.cat((pmf.detach().double().cpu(), torch.zeros(len(pmf), 1, dtype=torch.float64)), dim=1)
    prob[torch.arange(len(prob)), lengths - 1] = tail_mass.detach().double().cpu().reshape(-1)
    valid = torch.arange(prob.shape[1])[None, :] < lengths[:, None]
    if not torch.isfinite(prob).all():
        raise ValueError("non-finite probabilities in a pmf")
    prob = prob.clamp_min(0) * valid
    q = prob / prob.sum(1, keepdim=True) * total
    clamped = valid & (q < 1)
    while True:  # lambda only falls as symbols join the clamped set, so this ends
        free = valid & ~clamped
        lam = (total - clamped.sum(1)) / (q * free).sum(1)
        newly = free & (lam[:, None] * q < 1)
        if not newly.any():
            break
        clamped |= newly
    real = torch.where(clamped, 1.0, lam[:, None] * q) * valid
    freq = real.floor()
    # Largest remainders get the counts that flooring left over.
    remainder = (total - freq.sum(1)).long()
    fraction = torch.where(valid & ~clamped, real - freq, -1.0)
    order = torch.argsort(fraction, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    freq += (rank < remainder[:, None]).double()
    cdf = torch.zeros(len(pmf), max_length + 2, dtype=torch.int32)
    cdf[:, 1 : prob.shape[1] + 1] = (freq.cumsum(1) * valid).int()
    return cdf.to(pmf.device)


class _CdfRounding:
    """``_pmf_to_cdf`` by ``cdf_rounding``: CompressAI's own, or :func:`proportional_cdf`."""

    def _init_rounding(self, cdf_rounding: str) -> None:
        if cdf_rounding not in CDF_ROUNDINGS:
            raise ValueError(f"cdf_rounding must be one of {CDF_ROUNDINGS}, not {cdf_rounding!r}")
        self.cdf_rounding = cdf_rounding

    def _pmf_to_cdf(self, pmf, tail_mass, pmf_length, max_length):
        if self.cdf_rounding == "compressai":
            return super()._pmf_to_cdf(pmf, tail_mass, pmf_length, max_length)
        return proportional_cdf(pmf, tail_mass, pmf_length, max_length, self.entropy_coder_precision)


class RoundedEntropyBottleneck(_CdfRounding, EntropyBottleneck):
    """CompressAI's ``EntropyBottleneck`` with a choice of pmf rounding (same state_dict)."""

    def __init__(self, channels: int, *args, cdf_rounding: str = "compressai", **kwargs):
        super().__init__(channels, *args, **kwargs)
        self._init_rounding(cdf_rounding)


class RoundedGaussianConditional(_CdfRounding, GaussianConditional):
    """CompressAI's ``GaussianConditional`` with a choice of pmf rounding (same state_dict)."""

    def __init__(self, scale_table, *args, cdf_rounding: str = "compressai", **kwargs):
        super().__init__(scale_table, *args, **kwargs)
        self._init_rounding(cdf_rounding)
