"""TCM: "Learned Image Compression with Mixed Transformer-CNN Architectures"
(Liu, Sun, Katto, CVPR 2023), the codec the Object-MSE paper retrains.

The analysis/synthesis transforms stack transformer-CNN mixture blocks
(:class:`~icm_lib.models.tcm_layers.ConvTransBlock`); the entropy model is a
hyperprior with a channel-wise autoregressive context over ``num_slices``
slices of the latent, each predicted through a Swin attention module
(``SWAtten``), with latent residual prediction (``lrp``). Module names, shapes
and numerics follow the published implementation (LIC_TCM, ``models/tcm.py``):
its checkpoints load unchanged (:func:`icm_lib.checkpoint.load_official_tcm`), and with equal
weights ``forward``/``compress``/``decompress`` reproduce its outputs and its
bitstream byte for byte (tests/assets/tcm_N64_conformance.pt).

Sizes: ``small``/``medium``/``large`` are the paper's N = 64/96/128 (the paper's
C = 2N) with M = 320. Deviations from the published code:

- ``tiny`` is not in the paper: a reduced configuration of the same
  architecture (same blocks, one per stage instead of two; N=16, M=96, 48
  hyperprior channels, 3 slices, 8-channel attention heads, entropy-model
  widths 32/48/32) that trains on a 2-core CPU. A training step (forward,
  backward, both Adam steps) at batch 8 and 64x64 crops costs about 0.24
  CPU-seconds with one thread; step time at this size is dominated by per-op
  overhead, so this width trains to a better codec per second than N=8 did
  (20.3 against 18.8 dB after 150 s at lambda 0.01, MSE). Rate-distortion
  numbers from it are not the paper's TCM numbers.
- The published code hard-codes M = 320, the 192 hyperprior channels and the
  entropy model widths; here they are :class:`TCMConfig` fields (defaults equal
  the published values).
- ``forward`` and ``compress`` take any image size (replicate padding to a
  multiple of 64, cropped back in ``forward`` and in ``decompress`` given
  ``x_size``) and ``compress``/``decompress`` any batch size (one rANS string per
  image); window attention pads to whole windows (see
  :mod:`icm_lib.models.tcm_layers`). The published code codes one image whose
  sides are multiples of 128.
- The coding tables are :class:`TCMConfig` fields (``scale_levels``,
  ``cdf_rounding``; see :mod:`icm_lib.models.entropy_tables`). The defaults
  are CompressAI's, as published; ``tiny`` codes with 256 scales and
  proportional rounding, which halves what coding loses against the entropy
  estimate at low rates (demo tcm-tiny, 256x256 photo crops at 0.1-0.2 bpp:
  1.5 % -> 0.8 % over 8 images, worst image 3.3 % -> 1.8 %, the rest being
  the fixed cost of the two rANS strings). The tables change no weight, only
  what ``update()`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.layers import ResidualBlockUpsample, ResidualBlockWithStride, conv3x3, subpel_conv3x3
from compressai.models import CompressionModel
from compressai.models.utils import conv
from torch import Tensor

from icm_lib.models import entropy_tables
from icm_lib.models.entropy_tables import RoundedEntropyBottleneck, RoundedGaussianConditional
from icm_lib.models.tcm_layers import ConvTransBlock, SWAtten

#: Spatial factor between the image and the hyper-latent z: inputs are padded to it.
PAD_MULTIPLE = 64


@dataclass
class TCMConfig:
    """Hyperparameters of TCM; defaults are the published Large model (N=128).

    Checkpoints store every field and fill a field they lack with its default here,
    so a field added later must default to the behaviour from before it existed.
    """

    N: int = 128  # half the channels of g_a/g_s (each TCM block splits 2N into N conv + N transformer)
    M: int = 320  # channels of the latent y
    hyper_channels: int = 192  # channels of the hyper-latent z
    config: list[int] = field(default_factory=lambda: [2, 2, 2, 2, 2, 2])  # TCM blocks per stage: g_a x3, g_s x3
    head_dim: list[int] = field(default_factory=lambda: [8, 16, 32, 32, 16, 8])  # attention head size per stage
    window_size: int = 8  # Swin window of g_a, g_s and the entropy model's SWAtten
    hyper_window_size: int = 4  # Swin window of h_a and h_s
    hyper_head_dim: int = 32  # attention head size in h_a and h_s
    drop_path_rate: float = 0.0  # stochastic depth, ramped linearly over the g_a/g_s blocks
    num_slices: int = 5  # channel slices of y coded one after another
    max_support_slices: int = 5  # earlier slices a slice is conditioned on (-1 = all)
    atten_dim: int = 128  # inner channels of SWAtten
    atten_head_dim: int = 16  # attention head size in SWAtten
    transform_dims: list[int] = field(default_factory=lambda: [224, 128])  # hidden channels of cc/lrp transforms
    scale_levels: int = 64  # GaussianConditional scale table: log-spaced over [0.11, 256]; 64 is CompressAI's
    cdf_rounding: str = "compressai"  # pmf to 16-bit CDF: "compressai" (published) or "proportional"


#: Registered sizes (the registry adds the ``tcm-`` prefix).
TCM_SIZES: dict[str, dict] = {
    "tiny": dict(
        N=16,
        M=96,
        hyper_channels=48,
        config=[1] * 6,
        head_dim=[8] * 6,
        hyper_head_dim=8,
        num_slices=3,
        max_support_slices=3,
        atten_dim=32,
        atten_head_dim=8,
        transform_dims=[48, 32],
        scale_levels=256,
        cdf_rounding="proportional",
    ),
    "small": dict(N=64),
    "medium": dict(N=96),
    "large": dict(N=128),
}


def ste_round(x: Tensor) -> Tensor:
    """Rounding with a straight-through gradient."""
    return torch.round(x) - x.detach() + x


def _stage(c: TCMConfig, stage: int, rates: list[float], tail: nn.Module) -> list[nn.Module]:
    """``config[stage]`` TCM blocks alternating window / shifted window, then ``tail``."""
    blocks = [
        ConvTransBlock(c.N, c.N, c.head_dim[stage], c.window_size, rates[i], "W" if i % 2 == 0 else "SW")
        for i in range(c.config[stage])
    ]
    return blocks + [tail]


def _hyper_stage(c: TCMConfig, stage: int, tail: nn.Module) -> list[nn.Module]:
    blocks = [
        ConvTransBlock(c.N, c.N, c.hyper_head_dim, c.hyper_window_size, 0, "W" if i % 2 == 0 else "SW")
        for i in range(c.config[stage])
    ]
    return blocks + [tail]


def _slice_transform(c: TCMConfig, in_ch: int, out_ch: int) -> nn.Sequential:
    d1, d2 = c.transform_dims
    return nn.Sequential(
        conv(in_ch, d1, stride=1, kernel_size=3),
        nn.GELU(),
        conv(d1, d2, stride=1, kernel_size=3),
        nn.GELU(),
        conv(d2, out_ch, stride=1, kernel_size=3),
    )


class TCM(CompressionModel):
    """TCM image codec; see the module docstring."""

    def __init__(self, config: TCMConfig | None = None):
        super().__init__()
        c = self.cfg = config or TCMConfig()
        N, M = c.N, c.M
        self.num_slices, self.max_support_slices = c.num_slices, c.max_support_slices
        self.entropy_bottleneck = RoundedEntropyBottleneck(c.hyper_channels, cdf_rounding=c.cdf_rounding)
        n = sum(c.config)
        dpr = [c.drop_path_rate * i / max(n - 1, 1) for i in range(n)]
        # The published code ramps g_a's rates and gives all three g_s stages the fourth stage's.
        starts = [0, c.config[0], c.config[0] + c.config[1]] + [sum(c.config[:3])] * 3
        rates = [dpr[s:] for s in starts]
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, 2 * N, 2),
            *_stage(c, 0, rates[0], ResidualBlockWithStride(2 * N, 2 * N, stride=2)),
            *_stage(c, 1, rates[1], ResidualBlockWithStride(2 * N, 2 * N, stride=2)),
            *_stage(c, 2, rates[2], conv3x3(2 * N, M, stride=2)),
        )
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, 2 * N, 2),
            *_stage(c, 3, rates[3], ResidualBlockUpsample(2 * N, 2 * N, 2)),
            *_stage(c, 4, rates[4], ResidualBlockUpsample(2 * N, 2 * N, 2)),
            *_stage(c, 5, rates[5], subpel_conv3x3(2 * N, 3, 2)),
        )
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, 2 * N, 2), *_hyper_stage(c, 0, conv3x3(2 * N, c.hyper_channels, stride=2))
        )
        self.h_mean_s = nn.Sequential(
            ResidualBlockUpsample(c.hyper_channels, 2 * N, 2), *_hyper_stage(c, 3, subpel_conv3x3(2 * N, M, 2))
        )
        self.h_scale_s = nn.Sequential(
            ResidualBlockUpsample(c.hyper_channels, 2 * N, 2), *_hyper_stage(c, 3, subpel_conv3x3(2 * N, M, 2))
        )
        s = M // c.num_slices
        support = [M + s * self._num_support(i) for i in range(c.num_slices)]
        self.atten_mean = nn.ModuleList(nn.Sequential(self._swatten(ch)) for ch in support)
        self.atten_scale = nn.ModuleList(nn.Sequential(self._swatten(ch)) for ch in support)
        self.cc_mean_transforms = nn.ModuleList(_slice_transform(c, ch, s) for ch in support)
        self.cc_scale_transforms = nn.ModuleList(_slice_transform(c, ch, s) for ch in support)
        self.lrp_transforms = nn.ModuleList(_slice_transform(c, ch + s, s) for ch in support)
        self.gaussian_conditional = RoundedGaussianConditional(None, cdf_rounding=c.cdf_rounding)
        entropy_tables.scale_table(c.scale_levels)  # refuses a bad level count now rather than at update()

    def update(self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False) -> bool:
        """CompressAI's ``update``: CDF tables for coding, by default over ``cfg.scale_levels`` scales."""
        if scale_table is None:
            scale_table = entropy_tables.scale_table(self.cfg.scale_levels)
        return super().update(scale_table, force=force, update_quantiles=update_quantiles)

    def _swatten(self, channels: int) -> SWAtten:
        c = self.cfg
        return SWAtten(channels, channels, c.atten_head_dim, c.window_size, 0, inter_dim=c.atten_dim)

    def _num_support(self, slice_index: int) -> int:
        """How many decoded slices condition slice ``slice_index``."""
        m = self.max_support_slices
        return slice_index if m < 0 else min(slice_index, m)

    def _slice_params(
        self, i: int, latent_means: Tensor, latent_scales: Tensor, y_hat_slices: list[Tensor], y_size
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and scale of slice ``i`` from the hyperprior and the decoded slices; and the mean support."""
        support = y_hat_slices[: self._num_support(i)]
        mean_support = self.atten_mean[i](torch.cat([latent_means] + support, dim=1))
        mu = self.cc_mean_transforms[i](mean_support)[:, :, : y_size[0], : y_size[1]]
        scale_support = self.atten_scale[i](torch.cat([latent_scales] + support, dim=1))
        scale = self.cc_scale_transforms[i](scale_support)[:, :, : y_size[0], : y_size[1]]
        return mu, scale, mean_support

    def _refine(self, i: int, mean_support: Tensor, y_hat_slice: Tensor) -> Tensor:
        """Latent residual prediction: add 0.5 * tanh(lrp) to the decoded slice."""
        lrp = self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    def _hyper_decode(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

    def forward(self, x: Tensor) -> dict:
        """Training/evaluation pass with the entropy estimate: ``{"x_hat", "likelihoods": {"y", "z"}}``."""
        size = x.shape[-2:]
        x = pad_to_multiple(x)
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - z_offset) + z_offset
        latent_means, latent_scales = self._hyper_decode(z_hat)
        y_hat_slices, y_likelihoods = [], []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_support = self._slice_params(i, latent_means, latent_scales, y_hat_slices, y.shape[2:])
            _, likelihood = self.gaussian_conditional(y_slice, scale, mu)
            y_likelihoods.append(likelihood)
            y_hat_slices.append(self._refine(i, mean_support, ste_round(y_slice - mu) + mu))
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1))
        return {
            "x_hat": x_hat[..., : size[0], : size[1]],
            "likelihoods": {"y": torch.cat(y_likelihoods, dim=1), "z": z_likelihoods},
        }

    def compress(self, x: Tensor) -> dict:
        """Entropy-code a batch: ``{"strings": [y_strings, z_strings], "shape": z size}``, one string per image."""
        x = pad_to_multiple(x)
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        latent_means, latent_scales = self._hyper_decode(z_hat)
        symbols = [[] for _ in range(len(x))]
        indexes = [[] for _ in range(len(x))]
        y_hat_slices = []
        for i, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_support = self._slice_params(i, latent_means, latent_scales, y_hat_slices, y.shape[2:])
            index = self.gaussian_conditional.build_indexes(scale)
            y_q_slice = self.gaussian_conditional.quantize(y_slice, "symbols", mu)
            for b in range(len(x)):
                symbols[b].extend(y_q_slice[b].reshape(-1).tolist())
                indexes[b].extend(index[b].reshape(-1).tolist())
            y_hat_slices.append(self._refine(i, mean_support, y_q_slice + mu))
        cdf, cdf_lengths, offsets = self._cdf_tables()
        y_strings = []
        for b in range(len(x)):
            encoder = BufferedRansEncoder()
            encoder.encode_with_indexes(symbols[b], indexes[b], cdf, cdf_lengths, offsets)
            y_strings.append(encoder.flush())
        return {"strings": [y_strings, z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape, x_size=None) -> dict:
        """Decode ``compress``'s strings; ``x_size`` (H, W) crops the padding off ``x_hat``."""
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        latent_means, latent_scales = self._hyper_decode(z_hat)
        y_size = (z_hat.shape[2] * 4, z_hat.shape[3] * 4)
        cdf, cdf_lengths, offsets = self._cdf_tables()
        decoders = []
        for y_string in strings[0]:
            decoders.append(RansDecoder())
            decoders[-1].set_stream(y_string)
        y_hat_slices = []
        for i in range(self.num_slices):
            mu, scale, mean_support = self._slice_params(i, latent_means, latent_scales, y_hat_slices, y_size)
            index = self.gaussian_conditional.build_indexes(scale)
            values = [
                dec.decode_stream(index[b].reshape(-1).tolist(), cdf, cdf_lengths, offsets)
                for b, dec in enumerate(decoders)
            ]
            y_q_slice = torch.tensor(values, dtype=torch.float32, device=mu.device).reshape(mu.shape)
            y_hat_slices.append(self._refine(i, mean_support, self.gaussian_conditional.dequantize(y_q_slice, mu)))
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1)).clamp_(0, 1)
        if x_size is not None:
            x_hat = x_hat[..., : x_size[0], : x_size[1]]
        return {"x_hat": x_hat}

    def _cdf_tables(self) -> tuple[list, list, list]:
        gc = self.gaussian_conditional
        return gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(), gc.offset.reshape(-1).int().tolist()


def pad_to_multiple(x: Tensor, multiple: int = PAD_MULTIPLE) -> Tensor:
    """Replicate-pad (B, C, H, W) at the bottom and right to sides divisible by ``multiple``."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def official_state_dict(checkpoint: dict) -> dict:
    """The model state_dict inside a checkpoint saved by LIC_TCM's train.py (or a bare state_dict).

    Strips DataParallel's ``module.`` prefix; the older EntropyBottleneck key names
    (``_matrix0``, ``_bias0``, ``_factor0``) are remapped by CompressAI's
    ``CompressionModel.load_state_dict`` (``compressai.models.utils.remap_old_keys``).
    """
    state = checkpoint.get("state_dict", checkpoint)
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
