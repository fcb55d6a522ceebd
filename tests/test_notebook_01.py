"""Notebook 01 runs under papermill at the smoke profile and records what it built."""

from __future__ import annotations

from icm_lib.data.synth import SIZES
from icm_lib.notebook import read_record
from icm_lib.paths import figures_dir, notebooks_dir, runs_dir
from icm_lib.pipeline import run_notebook


def test_notebook_01_smoke(project_root):
    run_notebook(notebooks_dir() / "01_build_masks.ipynb", "smoke", runs_dir("smoke"))
    rec = read_record("01_build_masks", "smoke")
    assert set(rec["datasets"]) == {"shapes", "aerial"}
    for name, summary in rec["datasets"].items():
        assert summary["images"] == SIZES["smoke"][name]
        assert summary["masks_per_second"] > 0
        assert 0.005 < summary["object_area_mean"] < 0.6 and 0 <= summary["object_area_median"] < 0.6
        assert summary["objects_val"] > 0
        masks = project_root / summary["root"] / "masks"
        assert all(len(list((masks / s).glob("*.png"))) == n for s, n in SIZES["smoke"][name].items())
    assert rec["figures"] == ["object_masks_shapes", "object_masks_aerial", "object_area_histogram"]
    assert all(
        (figures_dir() / f"{f}.png").is_file() and (figures_dir() / f"{f}.pdf").is_file() for f in rec["figures"]
    )
