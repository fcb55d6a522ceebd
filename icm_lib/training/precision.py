"""Mixed-precision training: the transforms in bfloat16, the entropy models and the loss in float32.

TCM and the paper train in float32. With ``compute_dtype="bfloat16"`` the
training forward pass runs under ``torch.autocast``: the convolutions and
matrix products of the transforms (``g_a``, ``g_s``, ``h_a``, ``h_s``) run in
bfloat16, on channels-last tensors, the layout the bfloat16 units want (AMX on
recent Xeons, tensor cores on GPUs). The weights, the Adam states and the
gradients' updates stay float32 (autocast keeps float32 master weights).
What sets the rate stays float32 as well: each entropy model (CompressAI's
``EntropyBottleneck``, ``GaussianConditional``) gets its inputs in float32 and
runs with autocast off, so the likelihoods, hence ``bpp_loss``, are computed
as in float32 training; the decoded image is handed to the loss in float32.
Validation and coding (``compress``/``decompress``) never autocast.

Deviation: a speed option of the miniature (measured in ``icm bench train``
and in the README); off by default, the paper's recipe is float32. The demo
zoo's fifth training cycle (25,000 to 32,500 steps, on a CPU) used it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn as nn

COMPUTE_DTYPES: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


def check(compute_dtype: str) -> None:
    """Refuse an unknown dtype with the known ones."""
    if compute_dtype not in COMPUTE_DTYPES:
        known = ", ".join(repr(k) for k in COMPUTE_DTYPES)
        raise ValueError(f"unknown compute_dtype {compute_dtype!r} (known: {known})")


def native(compute_dtype: str, device: torch.device | str) -> bool:
    """Whether ``device`` computes in ``compute_dtype`` natively. A CPU without bfloat16 units (AVX2 only,
    as on many AMD EPYC) emulates it: 0.15x float32's speed measured in ``icm bench train`` on one."""
    device = torch.device(device)
    if COMPUTE_DTYPES[compute_dtype] is None:
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    try:  # oneDNN's own test: AVX512 (with or without its bfloat16 extension) or AMX
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def prepare(model: nn.Module, compute_dtype: str) -> nn.Module:
    """Make ``model`` ready to train under ``compute_dtype`` (in place): channels-last weights, and its
    entropy models run in float32 whatever the autocast around them. A no-op for float32 training."""
    check(compute_dtype)
    if COMPUTE_DTYPES[compute_dtype] is None:
        return model
    from compressai.entropy_models import EntropyModel  # here: the training config imports this module

    model.to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, EntropyModel) and not isinstance(module, Float32Forward):
            # The class, not the instance: a deep copy (validation codes a copy) or a pickle keeps the guard
            # and binds it to the copy, where a closure over the bound method would call the original.
            module.__class__ = _guarded(type(module))
    return model


def forward(net: nn.Module, inputs: tuple[torch.Tensor, ...], compute_dtype: str) -> dict[str, Any]:
    """``net(*inputs)`` under the setting's autocast; every floating tensor of the output back in float32."""
    dtype = COMPUTE_DTYPES[compute_dtype]
    if dtype is None:
        return net(*inputs)
    device = inputs[0].device.type
    inputs = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
    with torch.autocast(device, dtype=dtype):
        out = net(*inputs)
    return _float32(out)


class Float32Forward:
    """Mixin of an entropy model whose forward takes its floating tensor arguments in float32 and runs
    with autocast off (:func:`prepare` puts it in front of the module's own class)."""

    def forward(self, *args, **kwargs):
        args, kwargs = _float32(args), _float32(kwargs)
        devices = {a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)}
        with contextlib.ExitStack() as stack:
            for device in devices:
                stack.enter_context(torch.autocast(device, enabled=False))
            return super().forward(*args, **kwargs)


def _guarded(cls: type) -> type:
    """``Float32<cls>``: ``cls`` with :class:`Float32Forward` in front, made once and kept in this module
    under its name (:func:`__getattr__` makes those of CompressAI's entropy models on demand, so that a
    model pickled in one process loads in another)."""
    name = f"Float32{cls.__name__}"
    if name not in globals():
        globals()[name] = type(name, (Float32Forward, cls), {"__module__": __name__, "__qualname__": name})
    return globals()[name]


def __getattr__(name: str) -> type:
    base = None
    if name.startswith("Float32"):  # only then CompressAI (and torchvision with it): `icm zoo list` stays light
        from compressai import entropy_models

        base = getattr(entropy_models, name.removeprefix("Float32"), None)
        base = base if isinstance(base, type) and issubclass(base, entropy_models.EntropyModel) else None
    if base is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _guarded(base)


def _float32(value: Any) -> Any:
    """``value`` with every floating tensor in it (nested in dicts, lists, tuples) as float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value
