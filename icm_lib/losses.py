r"""Rate-distortion losses of "Image Coding for Machines with Object Region Learning"
(Shindo et al.), in CompressAI's shape (``compressai/losses/rate_distortion.py``):
``nn.Module``\ s whose ``forward(output, target, ...)`` returns a dict with
``loss``, ``bpp_loss`` and each distortion term.

All use TCM's convention ``loss = lmbda * 255**2 * D + bpp`` with images in
[0, 1], where the rate is the entropy estimate

    bpp = sum over y, z of -log2(likelihoods) / (B * H * W).

Object-MSE (Eq. 3). With a binary object mask :math:`m \in \{0,1\}^{H\times W}`
broadcast over the C channels of image :math:`x` and decoded :math:`\hat x`,

    Object_MSE(x, x_hat) = MSE(x * m, x_hat * m)
                         = 1 / (B C H W) * sum_{b,c,i,j} m_bij (x_bcij - x_hat_bcij)^2      (average="image")

which is what Eq. (3) writes: the error is averaged over *all* pixels, the
background contributing zeros. The option ``average="object"`` divides by the
number of object pixels instead,

    Object_MSE_obj = sum m (x - x_hat)^2 / (C * sum m)  =  Object_MSE / f,

where f = sum m / (B H W) is the fraction of pixels inside objects.
Consequence for lambda: with ``average="image"`` the distortion weight on each
object pixel is ``lmbda * f`` of what it would be under plain MSE, so matching
the object quality of an MSE model needs lambda about 1/f times larger; the
paper's object lambdas (0.05 ... 0.005) are 5x its MSE lambdas (0.01 ... 0.001),
i.e. f of about 0.2, which is typical for COCO. With ``average="object"`` the
lambdas are directly comparable with the MSE ones (use the MSE values).
An all-zero mask gives Object_MSE = 0 with either average: the loss is the
rate alone (no division by zero).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def bits_per_pixel(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """Entropy estimate of the rate: -sum log2(likelihoods) / num_pixels."""
    return sum(torch.log(lk).sum() for lk in likelihoods.values()) / (-math.log(2) * num_pixels)


def object_mse(x_hat: Tensor, target: Tensor, mask: Tensor, average: str = "image") -> Tensor:
    """Eq. (3): MSE inside the object mask (see the module docstring for both averages).

    Args:
        x_hat, target: (B, C, H, W) images in [0, 1].
        mask: (B, 1, H, W) or (B, H, W) in {0, 1}.
        average: "image" (over all pixels, as Eq. (3)) or "object" (over object pixels).
    Returns:
        A scalar tensor; 0 for an all-zero mask.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    mask = mask.to(x_hat.dtype)
    squared = (x_hat - target).pow(2) * mask
    if average == "image":
        return squared.mean()
    if average == "object":
        return squared.sum() / (mask.sum() * x_hat.shape[1]).clamp_min(1)
    raise ValueError(f"average must be 'image' or 'object', not {average!r}")


class RateDistortionLoss(nn.Module):
    """Eq. (1): ``lmbda * 255**2 * MSE(x, x_hat) + bpp``."""

    def __init__(self, lmbda: float = 0.01):
        super().__init__()
        self.lmbda = lmbda

    def forward(self, output: dict, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``mask`` (optional) only adds ``object_mse_loss`` for logging; it does not enter the loss."""
        n, _, h, w = target.shape
        out = {"bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
               "mse_loss": F.mse_loss(output["x_hat"], target)}
        if mask is not None:
            out["object_mse_loss"] = object_mse(output["x_hat"], target, mask).detach()
        out["loss"] = self.lmbda * 255**2 * out["mse_loss"] + out["bpp_loss"]
        return out


class ObjectRateDistortionLoss(nn.Module):
    """Eq. (4): ``lmbda * 255**2 * Object_MSE(x, x_hat) + bpp`` with Object_MSE of Eq. (3)."""

    def __init__(self, lmbda: float = 0.05, average: str = "image"):
        super().__init__()
        if average not in ("image", "object"):
            raise ValueError(f"average must be 'image' or 'object', not {average!r}")
        self.lmbda = lmbda
        self.average = average

    def forward(self, output: dict, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Args: ``output`` of a model's forward, ``target`` (B, 3, H, W), ``mask`` (B, 1, H, W) in {0, 1}."""
        n, _, h, w = target.shape
        out = {"bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
               "mse_loss": F.mse_loss(output["x_hat"], target).detach(),
               "object_mse_loss": object_mse(output["x_hat"], target, mask, self.average)}
        out["loss"] = self.lmbda * 255**2 * out["object_mse_loss"] + out["bpp_loss"]
        return out


class TaskRateDistortionLoss(nn.Module):
    """Eq. (2), the task-loss form: ``lmbda * D_task + bpp`` with
    ``D_task = mean_k MSE(f_k(x), f_k(x_hat))`` over the features f_k of a frozen task network.

    The network is frozen here (eval mode, no gradients to its weights); gradients
    still flow through it into the codec.

    Args:
        lmbda: weight of the task distortion (features are not 8-bit pixels: no 255**2).
        task_network: the recognition model, e.g. a detector backbone.
        feature_fn: ``feature_fn(task_network, images) -> Tensor | list[Tensor]``;
            defaults to calling the network.
    """

    def __init__(self, lmbda: float, task_network: nn.Module,
                 feature_fn: Callable[[nn.Module, Tensor], Tensor | list[Tensor]] | None = None):
        super().__init__()
        self.lmbda = lmbda
        self.task_network = task_network.eval().requires_grad_(False)
        self.feature_fn = feature_fn or (lambda net, images: net(images))

    def train(self, mode: bool = True):
        super().train(mode)
        self.task_network.eval()
        return self

    def _features(self, images: Tensor) -> list[Tensor]:
        feats = self.feature_fn(self.task_network, images)
        return list(feats) if isinstance(feats, (list, tuple)) else [feats]

    def forward(self, output: dict, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        n, _, h, w = target.shape
        with torch.no_grad():
            reference = self._features(target)
        decoded = self._features(output["x_hat"])
        task = sum(F.mse_loss(d, r) for d, r in zip(decoded, reference)) / len(reference)
        out = {"bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
               "mse_loss": F.mse_loss(output["x_hat"], target).detach(),
               "task_loss": task}
        if mask is not None:
            out["object_mse_loss"] = object_mse(output["x_hat"], target, mask).detach()
        out["loss"] = self.lmbda * task + out["bpp_loss"]
        return out
