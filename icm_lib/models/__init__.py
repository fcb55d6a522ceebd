"""Learned image codecs by name, in the way of CompressAI's model registry.

``create(name, **kwargs)`` builds an untrained model; every model follows
CompressAI's interface (``forward`` -> ``{"x_hat", "likelihoods"}``,
``compress``, ``decompress``, ``update``, ``aux_loss``). Names:

- ``tcm-tiny``, ``tcm-small``, ``tcm-medium``, ``tcm-large``: TCM (Liu, Sun,
  Katto, CVPR 2023), see :mod:`icm_lib.models.tcm`.
- ``bmshj2018-hyperprior``, ``mbt2018-mean``, ``cheng2020-attn``: CompressAI's
  baselines (Balle et al. 2018, Minnen et al. 2018, Cheng et al. 2020), with
  CompressAI's low-rate channel counts as defaults.

The name and the keyword arguments a model was built with are kept on the
model (``model.registry_name``, ``model.registry_config``) so that a
checkpoint can rebuild it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn
from compressai.models import Cheng2020Attention, MeanScaleHyperprior, ScaleHyperprior

from icm_lib.models.tcm import TCM, TCM_SIZES, TCMConfig, load_official_tcm

__all__ = ["TCM", "TCMConfig", "available", "create", "load_official_tcm", "parameter_count", "register"]

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {}


def register(name: str, builder: Callable[..., nn.Module], **defaults: Any) -> None:
    """Register ``builder(**config)`` under ``name``; ``defaults`` are its default keyword arguments."""
    _REGISTRY[name] = (builder, defaults)


def available() -> list[str]:
    """The registered model names."""
    return list(_REGISTRY)


def create(name: str, **kwargs: Any) -> nn.Module:
    """An untrained model by registry name; ``kwargs`` override its defaults (e.g. ``N=32``)."""
    from icm_lib.cli import UserError

    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {', '.join(available())}")
    builder, defaults = _REGISTRY[name]
    config = {**defaults, **kwargs}
    model = builder(**config)
    model.registry_name = name
    model.registry_config = config
    return model


def parameter_count(model: nn.Module) -> int:
    """The number of learned parameters (entropy-model quantiles included, CDF buffers not)."""
    return sum(p.numel() for p in model.parameters())


def _tcm(**config: Any) -> TCM:
    return TCM(TCMConfig(**config))


for _size, _config in TCM_SIZES.items():
    register(f"tcm-{_size}", _tcm, **_config)
register("bmshj2018-hyperprior", ScaleHyperprior, N=128, M=192)
register("mbt2018-mean", MeanScaleHyperprior, N=128, M=192)
register("cheng2020-attn", Cheng2020Attention, N=128)


def _list_models(args) -> int:
    print(f"{'model':<22} {'parameters':>12}  config")
    for name in available():
        model = create(name)
        print(f"{name:<22} {parameter_count(model):>12,}  {model.registry_config}")
    return 0


def add_cli(sub) -> None:
    parser = sub.add_parser("models", help="list the registered codec models with their parameter counts")
    parser.set_defaults(func=_list_models)
