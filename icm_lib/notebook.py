"""Helpers the notebooks share: the record each notebook's last cell writes.

Every pipeline notebook ends by calling :func:`record` with what it produced
(paths, counts, headline numbers). The record is plain JSON under
``data/<profile>/results/notebooks/<stem>.json``; the smoke tests and the
README's results table read it back.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from icm_lib.paths import project_root, results_dir


def _plain(value: Any) -> Any:
    """JSON-safe copy: paths relative to the project root, NaN/inf as None, numpy scalars as Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        try:
            return str(value.resolve().relative_to(project_root()))
        except ValueError:
            return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(stem: str, profile: str, summary: dict[str, Any]) -> Path:
    """Write a notebook's summary of what it produced; returns the JSON path."""
    path = results_dir(profile) / "notebooks" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"notebook": stem, "profile": profile, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **_plain(summary)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_record(stem: str, profile: str) -> dict[str, Any]:
    """A notebook's record, as written by :func:`record`."""
    path = results_dir(profile) / "notebooks" / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no record {path}: run notebook {stem} at profile {profile} first")
    return json.loads(path.read_text(encoding="utf-8"))
