"""Shared fixtures. Tests never touch the checkout's data/: ``ICM_ROOT`` points
at a temporary project root holding a copy of ``notebooks/`` when a test needs one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests: tiny models run faster so, and coding is pinned to it anyway."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


SMOKE_CODEC = {"N": 8, "M": 16}  # an untrained bmshj2018-hyperprior: plumbing, not rate-distortion


def write_untrained_codecs(
    profile: str, lambdas: dict[str, list[float]], model_name: str = "bmshj2018-hyperprior", method: str = ""
) -> None:
    """Untrained codecs in the trainer's layout (checkpoint.pt + summary.json per run), as notebook 02 leaves them;
    ``method`` labels a compared method the way training does (e.g. ``ROI, Object-MSE``; default: the loss's)."""
    import json

    import torch

    from icm_lib.checkpoint import save_checkpoint
    from icm_lib.models import create
    from icm_lib.training.loop import CHECKPOINT, SUMMARY
    from icm_lib.training.sweep import run_dir

    for loss, values in lambdas.items():
        for i, lmbda in enumerate(values):
            torch.manual_seed(i)
            model = create(model_name, **SMOKE_CODEC)
            out = run_dir(profile, loss, model_name, lmbda)
            labels = {"method": method} if method else {}
            meta = {"loss": loss, "lmbda": lmbda, "step": 1, "data": "shapes", **labels}
            save_checkpoint(out / CHECKPOINT, model, meta)
            summary = {"model": model_name, "loss": loss, "lmbda": lmbda, "step": 1, **labels}
            (out / SUMMARY).write_text(json.dumps(summary), encoding="utf-8")


@pytest.fixture
def smoke_coded(smoke_root, tmp_path, monkeypatch) -> Path:
    """A copy of the smoke project with masks (notebook 01's output) and two untrained codecs per loss and
    compared method (standing in for notebook 02's: Object-MSE, MSE, the ROI codec, the task-loss codec),
    ready for notebooks 03 and 04."""
    root = tmp_path / "project"
    shutil.copytree(smoke_root, root, symlinks=True)
    shutil.rmtree(root / "notebooks")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setenv("ICM_ROOT", str(root))
    write_untrained_codecs("smoke", {"object": [0.05, 0.01], "mse": [0.01, 0.002]})
    write_untrained_codecs("smoke", {"object": [0.05, 0.01]}, "mbt2018-mean-roi", "ROI, Object-MSE")
    write_untrained_codecs("smoke", {"task": [0.01, 0.002]})
    return root


def write_yolo_weights(path: Path, scale: str = "n", classes: int = 3) -> Path:
    """A YOLOv5 detector built from ultralytics' model yaml (untrained, nothing downloaded), saved as
    ultralytics saves its weights: what the task loss loads as its frozen network."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(f"yolov5{scale}.yaml", nc=classes, verbose=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {}}, path)
    return path
