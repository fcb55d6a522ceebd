"""Writing results without ever leaving half a file.

Every file the package writes that a later step reads (datasets' JSON,
bitstreams, records, results, training summaries) goes through a temporary file
in the same folder and an atomic rename, so a killed process leaves either the
old file or the new one.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(value: Any, path: Callable[[Path], str] = str) -> Any:
    """A copy that JSON can hold: NaN/inf as None, numpy scalars as Python numbers, paths through ``path``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, path) for v in value]
    if isinstance(value, Path):
        return path(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: Any, indent: int = 2) -> Path:
    """:func:`json_safe` ``payload`` written atomically as indented JSON; returns ``path``."""
    return write_atomic(path, json.dumps(json_safe(payload), indent=indent) + "\n")
