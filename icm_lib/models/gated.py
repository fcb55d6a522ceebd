"""A mean-scale hyperprior codec whose encoder can switch regions off: the demo zoo's small codec.

Minnen, Balle and Toderici's mean-scale hyperprior (NeurIPS 2018; CompressAI's
``MeanScaleHyperprior``, registered here as ``mbt2018-mean``) with one change
in the analysis transform: its latent is multiplied by a spatial gate that the
encoder computes from the image itself,

    y = g_a(x) * sigmoid(g_gate(x)),

``g_gate`` a small strided convolution network giving one value per latent
position. No mask is given to the codec, at training or at coding time: what
the gate learns comes from the loss alone. Under Object-MSE (Eq. 4 of Shindo
et al.) the background carries no distortion weight, so closing the gate there
saves its bits at no cost and the gate becomes the codec's own map of where
the objects are; under MSE (Eq. 1) every region counts and the gate stays open.

Why the change: a GDN network (``g_a`` of the Balle and Minnen codecs) has no
thresholding non-linearity, so "output nothing here" is hard for it to express,
and a small one trained for hours on a CPU did not learn it (see the README).
The gate is the same idea as the attention modules of Cheng et al. (CVPR 2020)
that the paper's TCM backbone also builds on, reduced to one spatial map. It is
a deviation of the demo's miniature; the paper profile keeps TCM-large.
The bitstream is that of ``MeanScaleHyperprior``: the gate acts before
quantization and is not transmitted, so the decoder is unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from compressai.models import MeanScaleHyperprior
from compressai.models.utils import conv


class GatedAnalysis(nn.Module):
    """``g_a(x) * gate(x)``: the analysis transform with a learned spatial gate (one map for all channels).

    ``gate(x) = 1 - s * (1 - sigmoid(g_gate(x)))`` with a warm-up strength ``s`` that rises
    linearly from 0 to 1 over the first ``warmup`` training forwards (counted in a buffer, so
    a resumed run and a checkpoint keep it). Without the warm-up the rate term closes the
    gate everywhere within a few hundred steps, before the decoder has learned to use the
    latent, and a closed sigmoid gate does not reopen (measured: a gate of 0.0000 on every
    val image after 500 steps, object PSNR stuck at 10 dB).
    """

    def __init__(self, analysis: nn.Module, gate_channels: int, open_bias: float = 4.0, warmup: int = 2000):
        super().__init__()
        self.analysis = analysis
        self.gate = nn.Sequential(
            conv(3, gate_channels), nn.LeakyReLU(inplace=True),
            conv(gate_channels, gate_channels), nn.LeakyReLU(inplace=True),
            conv(gate_channels, gate_channels), nn.LeakyReLU(inplace=True),
            conv(gate_channels, 1),
        )
        nn.init.constant_(self.gate[-1].bias, open_bias)  # sigmoid(4) = 0.98: open when the warm-up ends
        self.warmup = int(warmup)
        self.register_buffer("trained_steps", torch.zeros(1, dtype=torch.long))

    def strength(self) -> torch.Tensor:
        """How far the gate acts, from 0 (always open) to 1 (after the warm-up)."""
        if self.warmup <= 0:
            return torch.ones(())
        return (self.trained_steps[0].float() / self.warmup).clamp(max=1.0)

    def gate_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gate in [0, 1], one value per latent position: (B, 1, H/16, W/16)."""
        return 1 - self.strength() * (1 - torch.sigmoid(self.gate(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.trained_steps += 1
        return self.analysis(x) * self.gate_map(x)


class GatedMeanScaleHyperprior(MeanScaleHyperprior):
    """``MeanScaleHyperprior(N, M)`` whose ``g_a`` is gated (:class:`GatedAnalysis`: ``gate_channels`` wide,
    last bias ``gate_bias``, ``gate_warmup`` training steps before it acts fully)."""

    def __init__(self, N: int, M: int, gate_channels: int = 32, gate_bias: float = 4.0, gate_warmup: int = 2000, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.g_a = GatedAnalysis(self.g_a, gate_channels, gate_bias, gate_warmup)
