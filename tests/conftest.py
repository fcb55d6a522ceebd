"""Shared fixtures. Tests never touch the checkout's data/: ``ICM_ROOT`` points
at a temporary project root holding a copy of ``notebooks/`` when a test needs one."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"


@pytest.fixture
def project_root(tmp_path, monkeypatch) -> Path:
    """An empty project root (with the repo's notebooks and params) for a test's generated data."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setenv("ICM_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """A project root with the smoke datasets (shapes, aerial) and their masks, generated once per test session."""
    root = tmp_path_factory.mktemp("smoke-project")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    old = os.environ.get("ICM_ROOT")
    os.environ["ICM_ROOT"] = str(root)
    try:
        from icm_lib.data.layout import SPLITS
        from icm_lib.data.masks import build_masks
        from icm_lib.data.synth import synthesize_profile

        for layout in synthesize_profile("smoke").values():
            for split in SPLITS:
                build_masks(layout, split, verbose=False)
    finally:
        if old is None:
            os.environ.pop("ICM_ROOT")
        else:
            os.environ["ICM_ROOT"] = old
    return root
