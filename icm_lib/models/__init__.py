"""Learned image codecs by name, in the way of CompressAI's model registry.

``create(name, **kwargs)`` builds an untrained model; every model follows
CompressAI's interface (``forward`` -> ``{"x_hat", "likelihoods"}``,
``compress``, ``decompress``, ``update``, ``aux_loss``). Names:

- ``tcm-tiny``, ``tcm-small``, ``tcm-medium``, ``tcm-large``: TCM (Liu, Sun,
  Katto, CVPR 2023), see :mod:`icm_lib.models.tcm`.
- ``bmshj2018-hyperprior``, ``mbt2018-mean``, ``cheng2020-attn``: CompressAI's
  baselines (Balle et al. 2018, Minnen et al. 2018, Cheng et al. 2020), with
  CompressAI's low-rate channel counts as defaults.
- ``mbt2018-mean-gated``: the mean-scale hyperprior with a learned spatial gate
  on its latent (:mod:`icm_lib.models.gated`), an experiment towards the demo zoo (not yet stable).
- ``mbt2018-mean-wide``: the mean-scale hyperprior with a wider (``N_enc``) and deeper (``enc_blocks``)
  encoder (:mod:`icm_lib.models.wide_encoder`), an experiment towards the demo zoo; it grows from a
  trained ``mbt2018-mean`` codec's weights. Its defaults (``N_enc`` 1.5 ``N``, one residual block per
  stage) are the proportions measured to help.
- ``mbt2018-mean-roi``: the ROI codec, a compared method (:mod:`icm_lib.models.roi`): the mean-scale
  hyperprior coding only the latents inside an object mask given at coding time (``takes_mask``).
  ``mbt2018-mean-wide-roi``: the same on ``mbt2018-mean-wide``'s encoder (fine-tuned from such a codec).

The name and the complete configuration a model was built with are kept on
the model (``model.registry_name``, ``model.registry_config``: every
:class:`TCMConfig` field for TCM, not only the registry's defaults), so that a
checkpoint rebuilds the very model with :func:`build` even after the
registry's defaults for that name have changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch.nn as nn
from compressai.models import Cheng2020Attention, MeanScaleHyperprior, ScaleHyperprior

from icm_lib.errors import UserError
from icm_lib.models.gated import GatedMeanScaleHyperprior
from icm_lib.models.roi import RoiMeanScaleHyperprior, takes_mask
from icm_lib.models.tcm import TCM, TCM_SIZES, TCMConfig
from icm_lib.models.wide_encoder import WideEncoderMeanScaleHyperprior

__all__ = [
    "TCM",
    "TCMConfig",
    "available",
    "build",
    "create",
    "defaults",
    "model_config",
    "parameter_count",
    "register",
    "takes_mask",
    "with_config",
]

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {}


def register(name: str, builder: Callable[..., nn.Module], **defaults: Any) -> None:
    """Register ``builder(**config)`` under ``name``; ``defaults`` are its default keyword arguments."""
    _REGISTRY[name] = (builder, defaults)


def available() -> list[str]:
    """The registered model names."""
    return list(_REGISTRY)


def defaults(name: str) -> dict[str, Any]:
    """The registry's default keyword arguments of the model ``name`` (what :func:`create` builds without overrides)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {', '.join(available())}")
    return dict(_REGISTRY[name][1])


def create(name: str, **kwargs: Any) -> nn.Module:
    """An untrained model by registry name; ``kwargs`` override its defaults (e.g. ``N=32``)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {', '.join(available())}")
    return build(name, {**_REGISTRY[name][1], **kwargs})


def build(name: str, config: dict[str, Any]) -> nn.Module:
    """The model ``name`` from exactly ``config``: keys it lacks take the builder's defaults, not the registry's.

    This is how a checkpoint's stored config comes back (for TCM, missing fields take
    :class:`TCMConfig`'s defaults, which never change meaning).
    """
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {', '.join(available())}")
    try:
        model = _REGISTRY[name][0](**config)
    except TypeError as err:
        raise UserError(f"config does not fit model {name}: {err}") from None
    model.registry_name = name
    model.registry_config = model_config(model, config)
    return model


def model_config(model: nn.Module, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The complete keyword arguments that rebuild ``model`` with :func:`build`.

    A model with a dataclass ``cfg`` (TCM) gives all its fields; another gives ``config``
    (its constructor's keyword arguments), by default ``model.registry_config``.
    """
    cfg = getattr(model, "cfg", None)
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(model.registry_config if config is None else config)


def with_config(model: nn.Module, **changes: Any) -> nn.Module:
    """The same weights in a model built with ``changes`` to its config, CDF tables recomputed, in eval mode.

    For settings that change no weight, e.g. ``with_config(model, scale_levels=256)``.
    """
    new = build(model.registry_name, {**model_config(model), **changes})
    new.load_state_dict(model.state_dict())
    new.update(force=True)
    return new.eval()


def parameter_count(model: nn.Module) -> int:
    """The number of learned parameters (entropy-model quantiles included, CDF buffers not)."""
    return sum(p.numel() for p in model.parameters())


def _tcm(**config: Any) -> TCM:
    return TCM(TCMConfig(**config))


for _size, _config in TCM_SIZES.items():
    register(f"tcm-{_size}", _tcm, **_config)
register("bmshj2018-hyperprior", ScaleHyperprior, N=128, M=192)
register("mbt2018-mean", MeanScaleHyperprior, N=128, M=192)
register("mbt2018-mean-gated", GatedMeanScaleHyperprior, N=128, M=192, gate_channels=32, gate_bias=1.5)
register("mbt2018-mean-roi", RoiMeanScaleHyperprior, N=128, M=192)
register("mbt2018-mean-wide", WideEncoderMeanScaleHyperprior, N=128, M=192, N_enc=192, enc_blocks=1)
register("mbt2018-mean-wide-roi", RoiMeanScaleHyperprior, N=128, M=192, N_enc=192, enc_blocks=1)
register("cheng2020-attn", Cheng2020Attention, N=128)
