"""Notebook 03 at the smoke profile (slow: about a minute): codes both val splits with every codec,
writes the figures and its record."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

SMOKE_MODEL = {"N": 8, "M": 16}  # an untrained bmshj2018-hyperprior: plumbing, not rate-distortion


def write_untrained_codecs(profile: str, lambdas: dict[str, list[float]]) -> None:
    """Untrained codecs in the training helper's layout (checkpoint.pt + summary.json per run)."""
    from icm_lib.checkpoint import save_checkpoint
    from icm_lib.models import create
    from icm_lib.training.loop import CHECKPOINT, SUMMARY
    from icm_lib.training.sweep import run_dir

    for loss, values in lambdas.items():
        for i, lmbda in enumerate(values):
            torch.manual_seed(i)
            model = create("bmshj2018-hyperprior", **SMOKE_MODEL)
            out = run_dir(profile, loss, "bmshj2018-hyperprior", lmbda)
            save_checkpoint(out / CHECKPOINT, model, {"loss": loss, "lmbda": lmbda, "step": 1, "data": "shapes"})
            summary = {"model": "bmshj2018-hyperprior", "loss": loss, "lmbda": lmbda, "step": 1}
            (out / SUMMARY).write_text(json.dumps(summary), encoding="utf-8")


@pytest.fixture
def smoke_ready(smoke_root, tmp_path, monkeypatch):
    """A copy of the smoke project with masks (notebook 01's output) and two codecs per loss (notebook 02's)."""
    root = tmp_path / "project"
    shutil.copytree(smoke_root, root, symlinks=True)
    shutil.rmtree(root / "notebooks")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setenv("ICM_ROOT", str(root))
    from icm_lib.data.layout import DatasetLayout
    from icm_lib.data.masks import build_masks

    for name in ("shapes", "aerial"):
        build_masks(DatasetLayout.of("smoke", name), "val", verbose=False)
    write_untrained_codecs("smoke", {"object": [0.05, 0.01], "mse": [0.01, 0.002]})
    return root


def test_notebook_03_smoke(smoke_ready):
    from icm_lib.notebook import read_record
    from icm_lib.paths import decoded_dir, figures_dir, results_dir, runs_dir
    from icm_lib.pipeline import run_notebook

    run_notebook(smoke_ready / "notebooks" / "03_coding_examples.ipynb", "smoke", runs_dir("smoke"))
    rec = read_record("03_coding_examples", "smoke")
    assert rec["datasets"] == ["shapes", "aerial"]
    assert any("vvc" in s for s in rec["skipped"]) or "vvc@qp42" in rec["codecs"]
    for dataset in ("shapes", "aerial"):
        families = rec["families"][dataset]
        assert {"bmshj2018-hyperprior-object", "bmshj2018-hyperprior-mse", "jpeg", "webp", "avif"} <= set(families)
        for name in (f"coding_examples_{dataset}", f"object_psnr_vs_bpp_{dataset}"):
            assert (figures_dir() / f"{name}.png").stat().st_size > 10_000
            assert (figures_dir() / f"{name}.pdf").is_file()
        pairs = rec["bit_share_at_similar_bpp"][dataset]
        assert len(pairs) == 2 and all(0 <= p["object_bit_share"] <= 1 and 0 <= p["mse_bit_share"] <= 1 for p in pairs)
        # notebook 04 evaluates the decoded folders as they are: images, labels beside them, records
        folder = decoded_dir("smoke") / dataset / "bmshj2018-hyperprior-object@0.05"
        n_val = len(list((smoke_ready / "data/smoke/datasets" / dataset / "images/val").iterdir()))
        assert len(list((folder / "images/val").glob("*.png"))) == n_val
        assert len(list((folder / "labels/val").glob("*.txt"))) > 0
        jpeg = json.loads((results_dir("smoke") / "coding" / dataset / "jpeg.json").read_text())
        assert "real bitstream" in jpeg["description"] and len(jpeg["results"]["bpp"]) == 2
