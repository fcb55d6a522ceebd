"""Helpers the notebooks share: the record each notebook's last cell writes.

Every pipeline notebook ends by calling :func:`record` with what it produced
(paths, counts, headline numbers). The record is plain JSON under
``data/<profile>/results/notebooks/<stem>.json``; the smoke tests and the
README's results table read it back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from icm_lib.io import json_safe, write_json
from icm_lib.paths import project_root, results_dir


def _relative(path: Path) -> str:
    """A path relative to the project root when it lies inside it."""
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def record(stem: str, profile: str, summary: dict[str, Any]) -> Path:
    """Write a notebook's summary of what it produced; returns the JSON path."""
    path = results_dir(profile) / "notebooks" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "notebook": stem,
        "profile": profile,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **json_safe(summary, _relative),
    }
    return write_json(path, payload)


def read_record(stem: str, profile: str) -> dict[str, Any]:
    """A notebook's record, as written by :func:`record`."""
    path = results_dir(profile) / "notebooks" / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no record {path}: run notebook {stem} at profile {profile} first")
    return json.loads(path.read_text(encoding="utf-8"))
