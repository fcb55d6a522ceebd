"""Codec checkpoints: weights, CDF tables and metadata in one file.

A checkpoint is a dict ``{"format", "version", "meta", "state_dict",
"training_state"}`` written atomically (temporary file, then rename) and read
with ``torch.load(..., weights_only=True)``, so a checkpoint from a stranger
cannot run code. ``meta`` holds ``model`` (registry name), ``model_config``
(the model's complete configuration, :func:`icm_lib.models.model_config`),
``loss`` ("object" | "mse"), ``lmbda``, ``step`` and ``data``.
``training_state`` (optional) holds optimizer / scheduler / RNG state dicts:
tensors, dicts, lists, numbers and strings only.

Loading rebuilds the model from ``model_config`` alone
(:func:`icm_lib.models.build`), so a checkpoint keeps loading as the very same
model after the registry's defaults for its name change. Older checkpoints
stored the registry's defaults of the day plus overrides; every field they lack
took the config dataclass's default then and takes it now (e.g. the 64-scale
table of a tcm-tiny saved before ``scale_levels`` existed).

The CDF tables are computed from the weights when saving, so encoder and
decoder use the very same tables.

Loading trusts nothing in the file (see :func:`verify_checkpoint`): the zip
entries' CRC-32s must hold (a truncated file or a flipped byte is refused);
``weights_sha256``, the SHA-256 of the state_dict that
:func:`model_fingerprint` abbreviates, must match the weights (checkpoints
written before it existed load without it); every weight must be finite (NaN
weights would hang CompressAI's rANS coder); and the stored config must fit
the stored weights before the model is built: a 12 MB file whose config asks
for ``N=1024`` is refused instead of allocating gigabytes.

:func:`load_official_tcm` reads the other kind of checkpoint this package
loads: a state_dict saved by the published TCM code (LIC_TCM), through the
same weights-only reader.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.modules import module

from icm_lib.errors import UserError
from icm_lib.io import atomic_writer
from icm_lib.models import build, create, model_config
from icm_lib.models.tcm import TCM, TCM_SIZES, official_state_dict

FORMAT = "icm-codec-checkpoint"
VERSION = 1


def _rejected(err: Exception) -> str:
    """What a weights-only unpickler refused, from PyTorch's long message (e.g. ``torch.nn.modules.linear.Linear``)."""
    text = str(err)
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return f"it pickles {match[1]}, which is not plain weights"
    match = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    first = match[1] if match else (text.strip().splitlines() or ["unpickling failed"])[0]
    return f"not a plain weights file ({first[:120]})"


def read_weights_only(path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with a one-line :class:`UserError` for a bad file.

    A zip checkpoint (what ``torch.save`` writes) must first pass the CRC-32 of every entry, so a
    truncated file or one flipped byte is refused rather than loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    unreadable = (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise UserError(f"checkpoint {path} is corrupted: entry {bad} fails its CRC-32 check")
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"refusing to load {path}: {_rejected(err)}") from None
    except unreadable as err:
        raise UserError(f"cannot read checkpoint {path}: corrupted or truncated ({type(err).__name__})") from None


def model_meta(model: nn.Module) -> dict:
    """``model`` and the complete ``model_config`` of a model built by :func:`icm_lib.models.create`."""
    if not hasattr(model, "registry_name"):
        raise ValueError(
            "the model was not built by icm_lib.models.create: pass meta['model'] and meta['model_config']"
        )
    return {"model": model.registry_name, "model_config": model_config(model)}


def save_checkpoint(path, model: nn.Module, meta: dict | None = None, training_state: dict | None = None) -> Path:
    """Write model weights (with fresh CDF tables), metadata and optional training state atomically.

    Args:
        path: the checkpoint file to write.
        model: a CompressAI-style model from :func:`icm_lib.models.create`.
        meta: ``loss``, ``lmbda``, ``step``, ``data`` ...; ``model``/``model_config`` are filled in
            from the model itself when it came from the registry (they describe what is saved).
        training_state: optimizer / scheduler / RNG state dicts for resuming (optional).
    Returns:
        The path written.
    """
    path = Path(path)
    meta = {**(meta or {}), **model_meta(model)} if hasattr(model, "registry_name") else dict(meta or {})
    for key in ("model", "model_config"):
        if key not in meta:
            raise ValueError(f"checkpoint meta needs {key!r}")
    model.update(force=True)
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "meta": meta,
        "state_dict": state_dict,
        "weights_sha256": weights_digest(state_dict),
        "training_state": training_state,
    }
    with atomic_writer(path) as fh:
        torch.save(payload, fh)
    return path


def _read_payload(path) -> dict:
    """The checked contents of a checkpoint file (everything :func:`verify_checkpoint` promises)."""
    payload = read_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an icm codec checkpoint (for an official TCM file use load_official_tcm)")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint format version {payload.get('version')} is not supported")
    meta, state_dict = payload.get("meta"), payload.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        raise UserError(f"{path}: its meta is not a dict naming the model (meta['model'])")
    if not isinstance(meta.get("model_config", {}), dict):
        raise UserError(f"{path}: its meta['model_config'] is not a dict")
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state_dict.items()
    ):
        raise UserError(f"{path}: its state_dict is not a dict of tensors")
    stored = payload.get("weights_sha256")
    if stored is not None and stored != weights_digest(state_dict):
        raise UserError(f"{path}: the weights do not match the hash stored with them (altered or corrupted file)")
    broken = first_non_finite(state_dict)
    if broken:
        raise UserError(f"{path}: weight {broken} holds NaN or infinite values: refused (a diverged or damaged run)")
    return payload


def first_non_finite(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    return next(
        (name for name, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())), None
    )


def verify_checkpoint(path) -> None:
    """Raise a one-line :class:`UserError` unless ``path`` is an intact codec checkpoint.

    Checks what loading checks short of building the model: readable with ``weights_only``,
    zip CRC-32s, format and version, ``meta``, the stored weights hash, finite weights.
    For reusing a finished run without trusting that its file survived.
    """
    _read_payload(path)


def _ints(value) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _ints(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _ints(item)


@contextmanager
def _registration_budget(max_bytes: int, what: str) -> Iterator[None]:
    """Stop building a model as soon as its registered parameters and buffers pass ``max_bytes``.

    ``nn.Module`` registers a parameter right after allocating it (still untouched memory) and
    before initialising it, so a too-large model is stopped before it costs real memory.
    """
    total = 0

    def count(_module, _name, tensor):
        nonlocal total
        if tensor is not None:
            total += tensor.numel() * tensor.element_size()
            if total > max_bytes:
                raise UserError(
                    f"{what} (its parameters pass {max_bytes / 2**20:.1f} MiB, more than "
                    f"the stored weights can fill): config and weights do not match"
                )

    hooks = [
        module.register_module_parameter_registration_hook(count),
        module.register_module_buffer_registration_hook(count),
    ]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _build_checked(path, meta: dict, state_dict: dict) -> nn.Module:
    """The model of ``meta``, refused before it is allocated when its config does not fit ``state_dict``."""
    config = meta.get("model_config", {})
    largest = max((t.numel() for t in state_dict.values()), default=0)
    too_big = [n for n in _ints(config) if abs(n) > max(largest, 1)]
    if too_big:
        raise UserError(
            f"{path}: its model config holds {too_big[0]}, more than any stored weight tensor has "
            f"elements ({largest}): config and weights do not match"
        )
    stored_bytes = sum(t.numel() * t.element_size() for t in state_dict.values())
    # Twice the stored size: a model may build parts and replace them while it is constructed (CompressAI's
    # MeanScaleHyperprior replaces ScaleHyperprior's h_a and h_s, mbt2018-mean-wide its g_a), never more.
    try:
        with _registration_budget(2 * stored_bytes + 2**20, f"{path}: its config asks for a larger {meta['model']}"):
            return build(meta["model"], config)
    except UserError as err:
        raise UserError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    except (RuntimeError, MemoryError, ValueError, OverflowError) as err:
        raise UserError(
            f"{path}: its config does not build a {meta['model']} ({str(err).splitlines()[0][:120]})"
        ) from None


def load_checkpoint(path, map_location: str = "cpu") -> tuple[nn.Module, dict, dict | None]:
    """Rebuild the model of a checkpoint, ready to code (eval mode) or to train (call ``.train()``).

    Returns:
        ``(model, meta, training_state)``; ``training_state`` is None when none was saved.
    """
    payload = _read_payload(path)
    meta = payload["meta"]
    model = _build_checked(path, meta, payload["state_dict"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise UserError(
            f"{path}: weights do not fit model {meta['model']} ({str(err).splitlines()[0][:160]})"
        ) from None
    model.update(force=False)  # computes CDF tables only where the file has none
    return model.to(map_location).eval(), meta, payload.get("training_state")


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 over a state_dict: names, dtypes, shapes and values (CDF tables included), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def model_fingerprint(model: nn.Module, length: int = 16) -> str:
    """The first ``length`` hex digits of :func:`weights_digest` of the model's state_dict.

    Two models fingerprint alike only if they code alike, so a bitstream records which
    weights made it. Cached on the model until a weight changes in place or is replaced
    (hashing costs as much as coding a small image).
    """
    state = model.state_dict()
    signature = tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in state.values())
    cached = getattr(model, "_icm_fingerprint", None)
    if cached is None or cached[0] != signature:
        cached = (signature, weights_digest(state))
        model._icm_fingerprint = cached
    return cached[1][:length]


def load_official_tcm(path, size: str = "large") -> TCM:
    """A TCM with the weights of an official LIC_TCM checkpoint, CDF tables ready for coding.

    Args:
        path: the ``.pth.tar`` checkpoint file of the published implementation.
        size: ``small``, ``medium`` or ``large`` (N = 64, 96, 128), as the checkpoint was trained
            (or ``tiny``, for a state_dict of this project's reduced model).
    Returns:
        The model in eval mode; call ``.train()`` to fine-tune it.
    """
    if size not in TCM_SIZES:
        raise UserError(f"unknown TCM size {size!r}; one of {', '.join(TCM_SIZES)}")
    model = create(f"tcm-{size}")
    checkpoint = read_weights_only(path)
    if not isinstance(checkpoint, dict):
        raise UserError(f"{path} holds no state_dict")
    state = official_state_dict(checkpoint)
    # CDF buffers absent from the file are recomputed below: take the model's empty ones.
    cdf_names = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
    state.update({k: v for k, v in model.state_dict().items() if k not in state and k.endswith(cdf_names)})
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise UserError(f"{path} does not fit tcm-{size}: {str(err).splitlines()[0][:160]}") from None
    model.update(force=True)
    return model.eval()
