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

The losses are registered by name, the way CompressAI registers its criteria
(``compressai.registry.register_criterion``): ``mse`` (Eq. 1), ``object``
(Eq. 4), ``task`` (Eq. 2). A training run names one (``TrainConfig.loss``) with
its lambda and keyword arguments (``TrainConfig.loss_kwargs``, e.g.
``{"average": "object"}``); :func:`create_criterion` builds it. Each class
carries ``method``, the label of the compared method in tables and figures.
Adding a loss is one :func:`register_criterion` plus its tests.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

CRITERIA: dict[str, type[nn.Module]] = {}  # loss name -> criterion class (``forward(output, target, mask)``)


def register_criterion(name: str, method: str):
    """Class decorator: register a rate-distortion loss under ``name``; ``method`` labels its codecs in results."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        cls.method = method
        CRITERIA[name] = cls
        return cls

    return decorator


def criterion_class(name: str) -> type[nn.Module]:
    """The registered class of a loss name.

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    if name not in CRITERIA:
        raise ValueError(f"unknown loss {name!r}; registered: {', '.join(CRITERIA)}")
    return CRITERIA[name]


def criterion_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A loss's keyword arguments with its defaults filled in (``lmbda`` excluded: it is its own setting).

    Raises:
        ValueError: an unknown loss, an argument it does not take, or a required one missing.
    """
    cls = criterion_class(name)
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k not in ("self", "lmbda")}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"loss {name!r} takes no {', '.join(unknown)}; its arguments: {', '.join(params) or 'none'}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ValueError(
            f"loss {name!r} needs {', '.join(missing)}: {getattr(cls, 'needs', 'pass them in loss_kwargs')}"
        )
    return {k: kwargs.get(k, p.default) for k, p in params.items()}


def create_criterion(name: str, lmbda: float, **kwargs: Any) -> nn.Module:
    """Build the registered loss ``name`` with its lambda and keyword arguments (see :func:`criterion_kwargs`)."""
    return criterion_class(name)(lmbda=lmbda, **criterion_kwargs(name, kwargs))


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


@register_criterion("object", method="Object-MSE")
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
        out = {
            "bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
            "mse_loss": F.mse_loss(output["x_hat"], target).detach(),
            "object_mse_loss": object_mse(output["x_hat"], target, mask, self.average),
        }
        out["loss"] = self.lmbda * 255**2 * out["object_mse_loss"] + out["bpp_loss"]
        return out


@register_criterion("mse", method="MSE")
class RateDistortionLoss(nn.Module):
    """Eq. (1): ``lmbda * 255**2 * MSE(x, x_hat) + bpp``."""

    def __init__(self, lmbda: float = 0.01):
        super().__init__()
        self.lmbda = lmbda

    def forward(self, output: dict, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``mask`` (optional) only adds ``object_mse_loss`` for logging; it does not enter the loss."""
        n, _, h, w = target.shape
        out = {
            "bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
            "mse_loss": F.mse_loss(output["x_hat"], target),
        }
        if mask is not None:
            out["object_mse_loss"] = object_mse(output["x_hat"], target, mask).detach()
        out["loss"] = self.lmbda * 255**2 * out["mse_loss"] + out["bpp_loss"]
        return out


@register_criterion("task", method="task loss")
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

    needs = (
        "a frozen recognition network: TrainConfig(loss='task', loss_kwargs={'task_network': <nn.Module>}) "
        "from Python; no profile, notebook or CLI flag can name one yet"
    )

    def __init__(
        self,
        lmbda: float,
        task_network: nn.Module,
        feature_fn: Callable[[nn.Module, Tensor], Tensor | list[Tensor]] | None = None,
    ):
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
        out = {
            "bpp_loss": bits_per_pixel(output["likelihoods"], n * h * w),
            "mse_loss": F.mse_loss(output["x_hat"], target).detach(),
            "task_loss": task,
        }
        if mask is not None:
            out["object_mse_loss"] = object_mse(output["x_hat"], target, mask).detach()
        out["loss"] = self.lmbda * task + out["bpp_loss"]
        return out
