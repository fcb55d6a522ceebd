"""Every folder the project reads or writes, derived from the project root.

Notebooks, the CLI and tests all take their paths from here, so that a
notebook runs the same from any working directory and under papermill.
``ICM_ROOT`` overrides the root (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout's root (``ICM_ROOT`` when set)."""
    env = os.environ.get("ICM_ROOT")
    return Path(env).resolve() if env else PACKAGE_DIR.parent


def data_dir(profile: str) -> Path:
    """Generated data of one profile: ``data/<profile>/`` (git-ignored)."""
    return project_root() / "data" / profile


def dataset_dir(profile: str, dataset: str) -> Path:
    """One COCO-layout dataset: ``images/{split}``, ``annotations/instances_{split}.json``,
    ``labels/{split}`` (YOLO txt), ``masks/{split}`` (object masks)."""
    return data_dir(profile) / "datasets" / dataset


def codecs_dir(profile: str) -> Path:
    """Trained codec checkpoints: ``codecs/<loss>/<model>_lambda<l>/``."""
    return data_dir(profile) / "codecs"


def codec_name(model: str, loss: str, lmbda: float) -> str:
    """The name of a trained codec (the zoo's file stem), e.g. ``mbt2018-mean-object-0.05``."""
    return f"{model}-{loss}-{lmbda:g}"


def decoded_dir(profile: str) -> Path:
    """Images decoded by every codec: ``decoded/<dataset>/<codec id>/<split>/``."""
    return data_dir(profile) / "decoded"


def detectors_dir(profile: str) -> Path:
    """Trained and fine-tuned detectors and segmenters."""
    return data_dir(profile) / "detectors"


def results_dir(profile: str) -> Path:
    """Results JSON in CompressAI's results shape, and summaries."""
    return data_dir(profile) / "results"


def runs_dir(profile: str) -> Path:
    """Executed notebook copies written by ``icm pipeline`` (git-ignored)."""
    return project_root() / "runs" / profile


def figures_dir() -> Path:
    """Figures the notebooks write (committed for the demo profile)."""
    return project_root() / "figures"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def params_file(profile: str) -> Path:
    """Notebook parameters of one profile: ``notebooks/params/<profile>.yaml``."""
    return notebooks_dir() / "params" / f"{profile}.yaml"


def cache_dir() -> Path:
    """Tool caches and config (torch, ultralytics, matplotlib) kept inside the project."""
    return project_root() / ".cache"


def zoo_dir(profile: str) -> Path:
    """``zoo/<profile>/`` in the checkout (``ICM_ZOO`` overrides the ``zoo`` folder)."""
    root = Path(os.environ["ICM_ZOO"]) if os.environ.get("ICM_ZOO") else PACKAGE_DIR.parent / "zoo"
    return root / profile
