"""Profiles: the parameters of every stage, read from ``notebooks/params/<profile>.yaml``.

One file per profile (``smoke`` for tests, ``demo`` for the embedded CPU
miniature, ``paper`` for COCO2017/VisDrone on GPUs). Each top-level key is a
notebook's stem (``01_build_masks`` ...) and holds that notebook's
``parameters`` cell values, upper-case as in the notebook. The pipeline injects
them with papermill; the CLI reads the same sections, so both agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from icm_lib.paths import params_file

PROFILES = ("smoke", "demo", "paper")


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """Every notebook section of one profile.

    Raises:
        ValueError: the profile is unknown or its file is not a mapping of sections.
    """
    path = params_file(profile)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}: no {path} (known: {', '.join(known)})")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of notebook sections to parameter mappings")
    return data


def notebook_params(profile: str, notebook: str | Path) -> dict[str, Any]:
    """Parameters for one notebook (by stem or path), with ``PROFILE`` set."""
    stem = Path(notebook).stem
    params = dict(load_profile(profile).get(stem, {}))
    params["PROFILE"] = profile
    return params
