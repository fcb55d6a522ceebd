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
``{"average": "object"}``, or ``{"network": "yolo", "task_weight": 1000}`` for
the task loss); :func:`create_criterion` builds it. Each class
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


def method_label(model: nn.Module, loss: str) -> str:
    """A codec's compared-method label: its loss's (``Object-MSE``), after its model's when the model is a
    method of its own (``ROI, Object-MSE``: the ROI codec trained with Object-MSE)."""
    model_method = getattr(model, "method", None)
    return f"{model_method}, {criterion_class(loss).method}" if model_method else criterion_class(loss).method


def criterion_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A loss's keyword arguments with its defaults filled in (``lmbda`` excluded: it is its own setting).

    Raises:
        ValueError: an unknown loss, an argument it does not take, or a required one missing.
    """
    cls = criterion_class(name)
    skip = ("self", "lmbda", *getattr(cls, "context", ()))
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k not in skip}
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"loss {name!r} takes no {', '.join(unknown)}; its arguments: {', '.join(params) or 'none'}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ValueError(
            f"loss {name!r} needs {', '.join(missing)}: {getattr(cls, 'needs', 'pass them in loss_kwargs')}"
        )
    return {k: kwargs.get(k, p.default) for k, p in params.items()}


def create_criterion(name: str, lmbda: float, context: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered loss ``name`` with its lambda and keyword arguments (see :func:`criterion_kwargs`).

    ``context`` holds what a training run knows of itself (``profile``, ``dataset``); a loss receives
    the entries its class lists in ``context`` (the task loss: whose clean detector to load).
    """
    cls = criterion_class(name)
    given = {k: v for k, v in (context or {}).items() if k in getattr(cls, "context", ())}
    return cls(lmbda=lmbda, **criterion_kwargs(name, kwargs), **given)


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
    r"""Eq. (2), the task-loss codec: ``bpp + lambda_1 * MSE + lambda_2 * D_task`` with
    ``lambda_1 = lmbda * 255**2`` and ``lambda_2 = lmbda * task_weight``,

        D_task = 1/K sum_k MSE(f_k(x), f_k(x_hat))

    over the K feature maps f_k of a frozen recognition network. One lambda sweeps the rate as for
    the other losses; ``task_weight`` (= lambda_2 / lambda_1 * 255**2) sets the balance of the two
    distortions and stays fixed along a sweep.

    The network is frozen here (eval mode, no gradients to its weights, ``train()`` keeps it in
    eval); gradients still flow through it into the codec. It is named by ``network``
    (:func:`icm_lib.task_network.load_task_network`): ``"yolo"``, the YOLO detector trained on the
    clean images of the run's profile and dataset (notebook 04), whose backbone features at
    strides 8, 16 and 32 are ``f_k`` (why features and not the detection loss: that module's
    docstring), or a weights file. From Python a module may be given instead (``task_network``,
    with ``feature_fn(task_network, images)`` when calling it is not what gives the features).

    The default ``task_weight`` weighs the two distortions about equally: on demo ``shapes`` val
    images JPEG-coded at 0.36-0.99 bpp, ``255**2 * MSE`` was 59-282 and D_task (clean YOLOv5n
    backbone) 0.11-0.30, a ratio of about 1,000.

    Args:
        lmbda: the rate-distortion trade-off (MSE codecs' scale: 0.01 ... 0.001).
        task_weight: weight of D_task relative to ``255**2 * MSE``.
        network: ``"yolo"`` or a path to ultralytics detector weights (relative: from the project root).
        task_network, feature_fn: a frozen network given directly (``network`` is then unused).
        profile, dataset: whose clean detector ``"yolo"`` is; the training run supplies them.
    """

    context = ("profile", "dataset")  # supplied by the training run, not loss settings

    def __init__(
        self,
        lmbda: float = 0.003,
        task_weight: float = 1000.0,
        network: str = "yolo",
        task_network: nn.Module | None = None,
        feature_fn: Callable[[nn.Module, Tensor], Tensor | list[Tensor]] | None = None,
        profile: str = "",
        dataset: str = "",
    ):
        super().__init__()
        if not 0 <= task_weight < math.inf:
            raise ValueError(f"task_weight must be a finite number >= 0, got {task_weight}")
        if task_network is None:
            from icm_lib.task_network import load_task_network

            task_network = load_task_network(network, profile, dataset)
        self.lmbda, self.task_weight = lmbda, task_weight
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
            "mse_loss": F.mse_loss(output["x_hat"], target),
            "task_loss": task,
        }
        if mask is not None:
            out["object_mse_loss"] = object_mse(output["x_hat"], target, mask).detach()
        out["loss"] = self.lmbda * (255**2 * out["mse_loss"] + self.task_weight * task) + out["bpp_loss"]
        return out
