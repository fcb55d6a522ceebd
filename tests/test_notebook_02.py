"""Notebook 02 at the smoke profile: trains both sweeps of tcm-tiny, draws the figures, records."""
from __future__ import annotations

import json

import pytest

from test_train import train_root  # noqa: F401 - the fixture


def test_notebook_02_smoke(train_root):  # noqa: F811
    from icm_lib.config import notebook_params
    from icm_lib.notebook import read_record
    from icm_lib.paths import figures_dir, notebooks_dir, results_dir, runs_dir
    from icm_lib.pipeline import run_notebook
    from icm_lib.train import trained_codecs

    run_notebook(notebooks_dir() / "02_train_codecs.ipynb", "smoke", runs_dir("smoke"))
    params = notebook_params("smoke", "02_train_codecs")
    rec = read_record("02_train_codecs", "smoke")
    expected = {f"tcm-tiny-object@{l:g}" for l in params["OBJECT_LAMBDAS"]} | {f"tcm-tiny-mse@{l:g}" for l in params["MSE_LAMBDAS"]}
    assert set(rec["codecs"]) == expected
    assert {c.codec_id for c in trained_codecs("smoke")} == expected
    assert rec["training_seconds"]["runs_finished"] == len(expected) + 1  # the shared base too
    assert set(rec["bd_psnr_db"]) >= {"object", "background", "whole"}
    for family in ("tcm-tiny-object", "tcm-tiny-mse"):
        res = json.loads((results_dir("smoke") / "training" / f"{family}.json").read_text())
        assert "real bitstream" in res["description"]
        assert len(res["results"]["bpp"]) == 2 and all(b > 0 for b in res["results"]["bpp"])
    assert all((figures_dir() / f"{f}.png").is_file() for f in rec["figures"])
    # A second run reuses every finished codec: no training time spent.
    run_notebook(notebooks_dir() / "02_train_codecs.ipynb", "smoke", runs_dir("smoke"))
    assert read_record("02_train_codecs", "smoke")["wall_seconds"] < 0.5 * rec["wall_seconds"]
