"""Notebook 02 at the smoke profile: trains both sweeps (the retrain path), then takes them from a zoo."""

from __future__ import annotations

import json
import shutil

import yaml
from test_train import train_root  # noqa: F401 - the fixture


def _set_params(root, **changes):
    path = root / "notebooks" / "params" / "smoke.yaml"
    data = yaml.safe_load(path.read_text())
    data["02_train_codecs"].update(changes)
    path.write_text(yaml.safe_dump(data))


def test_notebook_02_smoke_retrain_then_zoo(train_root, monkeypatch):  # noqa: F811
    from icm_lib import zoo
    from icm_lib.config import TrainingStage, notebook_params
    from icm_lib.notebook import read_record
    from icm_lib.paths import codecs_dir, figures_dir, notebooks_dir, results_dir, runs_dir
    from icm_lib.pipeline import run_notebook
    from icm_lib.training.sweep import is_finished, sweep_configs, trained_codecs

    run_notebook(notebooks_dir() / "02_train_codecs.ipynb", "smoke", runs_dir("smoke"))
    params = notebook_params("smoke", "02_train_codecs")
    model = params["MODEL"]
    rec = read_record("02_train_codecs", "smoke")
    sweeps = [(model, params["LAMBDAS"]), *params["OTHER_MODELS"].items()]  # the ROI codec, warm-started
    expected = {
        f"{m}-{loss}@{lmbda:g}" for m, lambdas in sweeps for loss, values in lambdas.items() for lmbda in values
    }
    assert len(expected) == 6 and params["WARM_START"]
    assert rec["zoo"] is False and set(rec["codecs"]) == expected and rec["config"]["LAMBDAS"] == params["LAMBDAS"]
    assert {c.codec_id for c in trained_codecs("smoke")} == expected
    assert rec["training_seconds"]["runs_finished"] == len(expected)
    assert set(rec["bd_psnr_db"]) >= {"object", "background", "whole"}
    for family in (f"{model}-object", f"{model}-mse"):
        res = json.loads((results_dir("smoke") / "training" / f"{family}.json").read_text())
        assert "real bitstream" in res["description"]
        assert len(res["results"]["bpp"]) == 2 and all(b > 0 for b in res["results"]["bpp"])
    assert all((figures_dir() / f"{f}.png").is_file() for f in rec["figures"])

    # The zoo path: the codecs just trained become a zoo; a fresh project takes them from it, training nothing.
    monkeypatch.setenv("ICM_ZOO", str(train_root / "zoo"))
    zoo.export("smoke", params, sweep_configs(params)[1])
    shutil.rmtree(codecs_dir("smoke"))
    _set_params(train_root, ZOO=True)
    run_notebook(notebooks_dir() / "02_train_codecs.ipynb", "smoke", runs_dir("smoke"))
    rec_zoo = read_record("02_train_codecs", "smoke")
    assert rec_zoo["zoo"] is True and set(rec_zoo["codecs"]) == expected
    # the installed zoo codecs are the recipe's finished codecs: a retrain run with ZOO false reuses them
    stage = TrainingStage.from_profile("smoke")
    assert all(is_finished(cfg) for cfg in sweep_configs(stage)[1])
    assert all(
        json.loads((c.path.parent / "summary.json").read_text())["zoo"]["finished"] for c in trained_codecs("smoke")
    )
    assert rec_zoo["bd_psnr_db"] == rec["bd_psnr_db"]  # the same codecs, the same validation numbers
    assert "zoo_training_shapes" in rec_zoo["figures"] and (figures_dir() / "zoo_training_shapes.png").is_file()
