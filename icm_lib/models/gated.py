"""A mean-scale hyperprior codec whose encoder can switch regions off (an experiment, not the zoo's codec).

Minnen, Balle and Toderici's mean-scale hyperprior (NeurIPS 2018; CompressAI's
``MeanScaleHyperprior``, registered here as ``mbt2018-mean``) with one change
in the analysis transform: its latent is multiplied by a spatial gate that the
encoder computes from the image itself,

    y = g_a(x) * clamp(g_gate(x), 0, 1),

``g_gate`` a small strided convolution network giving one value per latent
position, clamped to [0, 1] (with a straight-through gradient, see
:class:`GatedAnalysis`). No mask is given to the codec, at training or at coding time: what
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

Status (measured 2026-11-29 on the demo data, N=64, M=96, 128x128 crops, batch 4,
Adam 1e-3): not a working recipe yet, so the demo zoo uses ``mbt2018-mean``.

- A sigmoid gate was shut everywhere by the rate within 500 steps and never
  reopened, also behind a 2,000-step warm-up that held it open (its logits went
  to minus infinity meanwhile).
- A clamp with a straight-through gradient trained for 900 steps, then the
  whole map moved at once: it shut on every position of the MSE codec (bpp 0.31
  to 0.09, object MSE 0.004 to 0.023) and stayed shut.
- The clamp with a bounded gradient (below) is stable: the MSE codec trained
  normally for 1,800 steps with the gate at 0.83-0.87. But the Object-MSE codec
  (lambda 0.015) did not learn where the objects are within 1,900 steps: the
  gate was 0.73 inside the objects and 0.72 on the background, at 0.36 bpp
  against the ungated codec's 0.28.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from compressai.models import MeanScaleHyperprior
from compressai.models.utils import conv


class _BoundedClamp(torch.autograd.Function):
    """``clamp(a, 0, 1)`` whose gradient passes inside [0, 1] and, outside it, only when it points back in.

    A plain clamp passes no gradient outside [0, 1], so a shut gate stays shut; the identity
    (straight-through) lets the logits drift without bound beyond the edges, where nothing in the
    forward pass holds them, until the whole map crosses over at once.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a)
        return a.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (a,) = ctx.saved_tensors
        outward = ((a <= 0) & (grad > 0)) | ((a >= 1) & (grad < 0))  # descent would push further out
        return grad.masked_fill(outward, 0.0)


class GatedAnalysis(nn.Module):
    """``g_a(x) * gate(x)``: the analysis transform with a learned spatial gate (one map for all channels).

    ``gate(x) = clamp(g_gate(x), 0, 1)`` with a straight-through gradient: the backward pass
    treats the clamp as the identity, so a closed gate still learns what opening it would gain
    in distortion and can reopen. A sigmoid gate does not: measured here, the rate term shut a
    sigmoid gate on every position within a few hundred steps (with or without a warm-up that
    held it open meanwhile), where its gradient vanishes, and the codec never recovered
    (object PSNR stuck at 10 dB). At a closed gate the latent is 0, where the Gaussian's rate
    gradient is about 0, so nothing holds the gate shut but the lack of distortion gain.
    """

    def __init__(self, analysis: nn.Module, gate_channels: int, open_bias: float = 1.5):
        super().__init__()
        self.analysis = analysis
        self.gate = nn.Sequential(
            conv(3, gate_channels),
            nn.LeakyReLU(inplace=True),
            conv(gate_channels, gate_channels),
            nn.LeakyReLU(inplace=True),
            conv(gate_channels, gate_channels),
            nn.LeakyReLU(inplace=True),
            conv(gate_channels, 1),
        )
        nn.init.constant_(self.gate[-1].bias, open_bias)  # starts open everywhere: the codec first learns to code

    def gate_map(self, x: torch.Tensor) -> torch.Tensor:
        """The gate in [0, 1], one value per latent position: (B, 1, H/16, W/16)."""
        return _BoundedClamp.apply(self.gate(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.analysis(x) * self.gate_map(x)


class GatedMeanScaleHyperprior(MeanScaleHyperprior):
    """``MeanScaleHyperprior(N, M)`` whose ``g_a`` is gated (:class:`GatedAnalysis`: ``gate_channels`` wide,
    its last bias ``gate_bias``)."""

    def __init__(self, N: int, M: int, gate_channels: int = 32, gate_bias: float = 1.5, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        self.g_a = GatedAnalysis(self.g_a, gate_channels, gate_bias)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Also takes a plain ``mbt2018-mean`` codec's weights (no gate): its ``g_a`` becomes the gated
        analysis transform and the gate keeps its initial, open state, so a trained codec can be fine-tuned
        with the gate (``icm train --model mbt2018-mean-gated --init <mbt2018-mean checkpoint>``)."""
        if not any(k.startswith(("g_a.analysis.", "g_a.gate.")) for k in state_dict):
            state_dict = {("g_a.analysis." + k[4:] if k.startswith("g_a.") else k): v for k, v in state_dict.items()}
            state_dict |= {k: v for k, v in self.state_dict().items() if k.startswith("g_a.gate.")}
        return super().load_state_dict(state_dict, strict=strict)
