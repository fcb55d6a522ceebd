"""The transformer-CNN blocks of TCM (Liu, Sun, Katto, CVPR 2023, Sec. 3).

Swin-Transformer window attention (``WMSA``, ``Block``), the parallel
transformer-CNN mixture block (``ConvTransBlock``, the paper's TCM block) and
the Swin-based attention module of the entropy model (``SWAtten``). Module
and parameter names follow the published implementation (LIC_TCM) so that its
checkpoints load unchanged; the convolutions come from CompressAI's layers.

Deviation from the published code: window attention pads its input at the
bottom and right to a multiple of the window (zeros, after the layer norm, as
the Swin Transformer does) and crops back. The published code needs every
side to be a multiple of the window, and for latents no larger than one window
pads them off-centre in ``SwinBlock`` (which fails for even differences).
Wherever the published code runs on sides that are multiples of the window,
both compute the same thing.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import AttentionBlock, ResidualBlock, conv1x1
from torch import Tensor
from torchvision.ops import StochasticDepth


def _drop_path(rate: float) -> nn.Module:
    """Stochastic depth per sample (timm's DropPath), or nothing when ``rate`` is 0."""
    return StochasticDepth(rate, mode="row") if rate > 0 else nn.Identity()


def _window_relation(window_size: int) -> Tensor:
    """Index pairs into the relative-position table for every (query, key) pair of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"), -1)
    coords = coords.reshape(-1, 2)
    return coords[:, None, :] - coords[None, :, :] + window_size - 1


def _shift_mask(h_windows: int, w_windows: int, p: int, shift: int, device) -> Tensor:
    """Mask (True = blocked) keeping the cyclically shifted windows of the last row/column apart."""
    mask = torch.zeros(h_windows, w_windows, p, p, p, p, dtype=torch.bool, device=device)
    s = p - shift
    mask[-1, :, :s, :, s:, :] = True
    mask[-1, :, s:, :, :s, :] = True
    mask[:, -1, :, :s, :, s:] = True
    mask[:, -1, :, s:, :, :s] = True
    return mask.reshape(1, 1, h_windows * w_windows, p * p, p * p)


class WMSA(nn.Module):
    """(Shifted-)window multi-head self-attention with a relative position bias (Swin Transformer)."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, type: str):
        super().__init__()
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.n_heads = input_dim // head_dim
        self.window_size = window_size
        self.type = type
        self.embedding_layer = nn.Linear(input_dim, 3 * input_dim, bias=True)
        table = torch.zeros(self.n_heads, 2 * window_size - 1, 2 * window_size - 1)
        self.relative_position_params = nn.Parameter(nn.init.trunc_normal_(table, std=0.02))
        self.linear = nn.Linear(input_dim, output_dim)
        self.register_buffer("relation", _window_relation(window_size), persistent=False)

    def relative_embedding(self) -> Tensor:
        """(heads, p*p, p*p) attention bias of every query/key pair of a window."""
        return self.relative_position_params[:, self.relation[..., 0], self.relation[..., 1]]

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C_out)."""
        b, h, w, _ = x.shape
        p, shift = self.window_size, self.window_size // 2
        x = F.pad(x, (0, 0, 0, (-w) % p, 0, (-h) % p))
        if self.type != "W":
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        hw, ww = x.shape[1] // p, x.shape[2] // p
        x = x.reshape(b, hw, p, ww, p, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hw * ww, p * p, -1)
        qkv = self.embedding_layer(x).reshape(b, hw * ww, p * p, 3 * self.n_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 2, 4).chunk(3, dim=0)
        sim = torch.einsum("hbwpc,hbwqc->hbwpq", q, k) * self.scale
        sim = sim + self.relative_embedding()[:, None, None]
        if self.type != "W":
            sim = sim.masked_fill_(_shift_mask(hw, ww, p, shift, x.device), float("-inf"))
        probs = F.softmax(sim, dim=-1)
        out = torch.einsum("hbwij,hbwjc->hbwic", probs, v)
        out = self.linear(out.permute(1, 2, 3, 0, 4).reshape(b, hw * ww, p * p, -1))
        out = out.reshape(b, hw, ww, p, p, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hw * p, ww * p, -1)
        if self.type != "W":
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out[:, :h, :w]


class Block(nn.Module):
    """Swin Transformer block: window attention and an MLP, each behind a layer norm and a skip."""

    def __init__(
        self, input_dim: int, output_dim: int, head_dim: int, window_size: int, drop_path: float, type: str = "W"
    ):
        super().__init__()
        assert type in ("W", "SW")
        self.ln1 = nn.LayerNorm(input_dim)
        self.msa = WMSA(input_dim, input_dim, head_dim, window_size, type)
        self.drop_path = _drop_path(drop_path)
        self.ln2 = nn.LayerNorm(input_dim)
        self.mlp = nn.Sequential(nn.Linear(input_dim, 4 * input_dim), nn.GELU(), nn.Linear(4 * input_dim, output_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.msa(self.ln1(x)))
        return x + self.drop_path(self.mlp(self.ln2(x)))


class ConvTransBlock(nn.Module):
    """The transformer-CNN mixture block: a 1x1 conv splits the channels into a residual
    CNN branch (``conv_dim``) and a Swin branch (``trans_dim``), a 1x1 conv fuses them back."""

    def __init__(
        self, conv_dim: int, trans_dim: int, head_dim: int, window_size: int, drop_path: float, type: str = "W"
    ):
        super().__init__()
        self.conv_dim, self.trans_dim = conv_dim, trans_dim
        self.trans_block = Block(trans_dim, trans_dim, head_dim, window_size, drop_path, type)
        self.conv1_1 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1, 1, 0, bias=True)
        self.conv1_2 = nn.Conv2d(conv_dim + trans_dim, conv_dim + trans_dim, 1, 1, 0, bias=True)
        self.conv_block = ResidualBlock(conv_dim, conv_dim)

    def forward(self, x: Tensor) -> Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.conv_dim, self.trans_dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SwinBlock(nn.Module):
    """A window block followed by a shifted-window block, on (B, C, H, W) tensors."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int, drop_path: float):
        super().__init__()
        self.block_1 = Block(input_dim, output_dim, head_dim, window_size, drop_path, type="W")
        self.block_2 = Block(input_dim, output_dim, head_dim, window_size, drop_path, type="SW")

    def forward(self, x: Tensor) -> Tensor:
        x = self.block_2(self.block_1(x.permute(0, 2, 3, 1)))
        return x.permute(0, 3, 1, 2)


class SWAtten(AttentionBlock):
    """Swin-based attention module of the channel-wise entropy model (the paper's SWAtten):
    CompressAI's attention block with a Swin block as its non-local branch, between 1x1
    convs to and from ``inter_dim`` channels."""

    def __init__(
        self, input_dim: int, output_dim: int, head_dim: int, window_size: int, drop_path: float, inter_dim: int = 192
    ):
        super().__init__(N=inter_dim)
        self.non_local_block = SwinBlock(inter_dim, inter_dim, head_dim, window_size, drop_path)
        self.in_conv = conv1x1(input_dim, inter_dim)
        self.out_conv = conv1x1(inter_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_conv(x)
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(self.non_local_block(x)))
        return self.out_conv(out + x)
