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
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from icm_lib.cli import UserError

FORMAT = "icm-codec-checkpoint"
VERSION = 1


def read_weights_only(path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with a one-line :class:`UserError` for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unpickling failed"
        raise UserError(f"refusing to load {path}: not a plain weights file ({first[:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read checkpoint {path}: corrupted or truncated ({type(err).__name__})") from None


def model_meta(model: nn.Module) -> dict:
    """``model`` and the complete ``model_config`` of a model built by :func:`icm_lib.models.create`."""
    from icm_lib.models import model_config

    if not hasattr(model, "registry_name"):
        raise ValueError("the model was not built by icm_lib.models.create: pass meta['model'] and meta['model_config']")
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
    payload = {"format": FORMAT, "version": VERSION, "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "training_state": training_state}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path, map_location: str = "cpu") -> tuple[nn.Module, dict, dict | None]:
    """Rebuild the model of a checkpoint, ready to code (eval mode) or to train (call ``.train()``).

    Returns:
        ``(model, meta, training_state)``; ``training_state`` is None when none was saved.
    """
    from icm_lib.models import build

    payload = read_weights_only(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an icm codec checkpoint (for an official TCM file use load_official_tcm)")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint format version {payload.get('version')} is not supported")
    meta = payload["meta"]
    try:
        model = build(meta["model"], meta.get("model_config", {}))
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise UserError(f"{path}: weights do not fit model {meta['model']} ({str(err).splitlines()[0][:160]})") from None
    model.update(force=False)  # computes CDF tables only where the file has none
    return model.to(map_location).eval(), meta, payload.get("training_state")


def model_fingerprint(model: nn.Module, length: int = 16) -> str:
    """Hex SHA-256 prefix over the model's state_dict (names, shapes, values, CDF tables included).

    Two models fingerprint alike only if they code alike, so a bitstream records which
    weights made it.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:length]
