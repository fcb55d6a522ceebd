"""A mean-scale hyperprior with a larger analysis transform (an experiment towards the demo zoo).

Minnen, Balle and Toderici's mean-scale hyperprior (NeurIPS 2018; CompressAI's
``MeanScaleHyperprior``, registered here as ``mbt2018-mean``) with its encoder
``g_a`` grown in two ways, each optional:

- ``N_enc``: the width of ``g_a``'s three hidden layers (``N`` in the original,
  which keeps setting the widths of ``g_s``, ``h_a`` and ``h_s``);
- ``enc_blocks``: residual blocks (two 3x3 convolutions, CompressAI's
  ``ResidualBlock``) after the second and the third GDN of ``g_a``, at 1/4 and
  1/8 of the image's resolution, where they are cheap and widen the receptive
  field of a latent element from 61 to 61 + 48 * enc_blocks pixels.

Why: under Object-MSE (Eq. 4 of Shindo et al.) the encoder is also the codec's
object detector. On the demo data the N=64 codec's remaining background bits sit
on the spots of the photographs that look like shapes (the README, "what would
reach the remaining targets"), and its allocation stopped improving with more
training at that size. The decoder, the hyperprior and the bitstream are those of
``MeanScaleHyperprior``: only the encoder changes, so a file is decoded the same
way and the decoder's cost is unchanged.

``load_state_dict`` also takes a plain ``mbt2018-mean`` codec's weights (same
``N`` and ``M``) and grows them function-preservingly, so that a trained codec
continues with the larger encoder (``icm train --model mbt2018-mean-wide --init
<mbt2018-mean checkpoint>``): the new channels start random but feed nothing (the
weights that read them, and the GDN terms of old channels that read them, are
0), and each residual block starts as the identity (its last convolution is 0).
The grown codec codes every image exactly as its source did until it trains.

Status (measured 2026-12-01 on the demo data, the zoo's Object-MSE 0.015 grown at 45,000 steps and
continued 5,000 steps at 1e-4; README, "what would reach the remaining targets"): with
``N_enc=96, enc_blocks=1`` the share of its bits inside the objects rose from 50 to 52 % and its bits on
images without objects fell by 18 %, where the same steps with the plain encoder moved neither; with
``N_enc=128`` alone nothing moved. The next demo zoo (``zoo/demo/next-recipe.yaml``) grows every codec into
it: ``icm zoo train --recipe zoo/demo/next-recipe.yaml`` (``GROWN_FROM``); its ROI codec is
``mbt2018-mean-wide-roi``, :class:`icm_lib.models.roi.RoiMeanScaleHyperprior` on this encoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from compressai.layers import GDN, ResidualBlock
from compressai.models import MeanScaleHyperprior
from compressai.models.utils import conv


def _blocks(width: int, count: int) -> list[nn.Module]:
    return [ResidualBlock(width, width) for _ in range(count)]


class WideEncoderMeanScaleHyperprior(MeanScaleHyperprior):
    """``MeanScaleHyperprior(N, M)`` whose ``g_a`` is ``N_enc`` wide with ``enc_blocks`` residual blocks per stage."""

    def __init__(self, N: int, M: int, N_enc: int | None = None, enc_blocks: int = 0, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        width = N_enc or N
        if width != N or enc_blocks:  # else the plain g_a stays, initialised as MeanScaleHyperprior's
            layers = [conv(3, width), GDN(width), conv(width, width), GDN(width), *_blocks(width, enc_blocks)]
            layers += [conv(width, width), GDN(width), *_blocks(width, enc_blocks), conv(width, M)]
            self.g_a = nn.Sequential(*layers)
        # where each layer of the plain g_a sits in this one (the residual blocks come after the GDNs 2 and 3)
        self.plain_layers = [0, 1, 2, 3, 4 + enc_blocks, 5 + enc_blocks, 6 + 2 * enc_blocks]

    def load_state_dict(self, state_dict, strict: bool = True):
        """Also takes a plain ``mbt2018-mean`` codec's weights, grown into this encoder (module docstring)."""
        own = {k: v for k, v in self.state_dict().items() if k.startswith("g_a.")}
        if any(k not in state_dict or state_dict[k].shape != v.shape for k, v in own.items()):
            state_dict = self._grown(state_dict)
        return super().load_state_dict(state_dict, strict=strict)

    @torch.no_grad()
    def _grown(self, plain: dict) -> dict:
        """This model's own initial weights with the plain codec's embedded (module docstring)."""
        grown = {k: v.clone() for k, v in self.state_dict().items()}
        for i, j in enumerate(self.plain_layers):
            for name in ("weight", "bias", "beta", "gamma"):
                old = plain.get(f"g_a.{i}.{name}")
                if old is None:
                    continue
                new = grown[f"g_a.{j}.{name}"]
                if name in ("weight", "gamma"):  # old outputs read no new input
                    zero = 0.0 if name == "weight" else self.g_a[j].gamma_reparam.init(torch.zeros(())).item()
                    new[: old.shape[0], old.shape[1] :] = zero
                    new[: old.shape[0], : old.shape[1]] = old
                else:
                    new[: old.shape[0]] = old
        for j, layer in enumerate(self.g_a):
            if isinstance(layer, ResidualBlock):  # starts as the identity
                grown[f"g_a.{j}.conv2.weight"].zero_()
                grown[f"g_a.{j}.conv2.bias"].zero_()
        return grown | {k: v for k, v in plain.items() if not k.startswith("g_a.")}
