"""Sweep plumbing: run folders, warm starts, the list of finished codecs, region BD-PSNR, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from icm_lib.config import TrainingStage, notebook_params
from icm_lib.metrics import bd_psnr
from icm_lib.training.config import TrainConfig, recipe_differences
from icm_lib.training.loop import CHECKPOINT, SUMMARY
from icm_lib.training.report import region_bd_psnr, write_results
from icm_lib.training.sweep import (
    RunMismatch,
    is_finished,
    run_dir,
    sweep_configs,
    trained_codecs,
    warm_start_levels,
)


def run_config(profile: str, loss: str, lmbda: float, steps: int = 10, **settings) -> TrainConfig:
    return TrainConfig(
        run_dir(profile, loss, "tcm-tiny", lmbda),
        profile=profile,
        model="tcm-tiny",
        loss=loss,
        lmbda=lmbda,
        steps=steps,
        **settings,
    )


def fake_finished_run(
    profile: str, loss: str, lmbda: float, val: dict, steps: int = 10, config: dict | None = None
) -> TrainConfig:
    """A finished run's files (a small real checkpoint: reusing a run verifies it); returns its config."""
    from icm_lib.checkpoint import save_checkpoint
    from icm_lib.models import create

    cfg = run_config(profile, loss, lmbda, steps)
    out = cfg.out_dir
    save_checkpoint(
        out / CHECKPOINT, create("bmshj2018-hyperprior", N=8, M=8), {"loss": loss, "lmbda": lmbda, "step": steps}
    )
    summary = {
        "model": "tcm-tiny",
        "loss": loss,
        "lmbda": lmbda,
        "step": steps,
        "train_seconds": 1.5,
        "val": val,
        "config": cfg.to_meta() if config is None else config,
    }
    (out / SUMMARY).write_text(json.dumps(summary))
    return cfg


def test_demo_sweep_trains_every_codec_with_its_own_loss(project_root):
    """The paper's codecs of the demo from scratch with their own loss, but Object-MSE 0.05, fine-tuned with its
    own loss from Object-MSE 0.015 (from scratch it had not learned where the objects are; README)."""
    stage = TrainingStage.from_profile("demo")
    base, runs = sweep_configs(stage)
    assert base is None and stage.zoo is True
    mine = [(r.loss, r.lmbda) for r in runs if r.model == stage.model]
    assert mine == [(loss, lmbda) for loss, ls in stage.lambdas.items() for lmbda in ls]
    scratch = [r for r in runs if not r.warm_start]
    assert {(r.loss, r.lmbda) for r in scratch} == {("object", 0.015), ("object", 0.005)} | {
        ("mse", lmbda) for lmbda in stage.lambdas["mse"]
    }
    assert all(r.init is None and r.model_kwargs == stage.model_kwargs for r in scratch)
    (high,) = [r for r in runs if (r.model, r.loss, r.lmbda) == (stage.model, "object", 0.05)]
    assert high.warm_start == "mbt2018-mean-object-0.015" and (high.steps, high.lr) == (4000, 1e-3)
    assert runs[0].out_dir == run_dir("demo", "object", stage.model, stage.lambdas["object"][0])
    assert runs[0].out_dir.name == f"{stage.model}_lambda{stage.lambdas['object'][0]:g}"


def test_a_sweep_of_an_unregistered_loss_is_refused(project_root):
    with pytest.raises(ValueError, match="unknown loss 'l2'; registered: object, mse, task"):
        sweep_configs(TrainingStage(profile="smoke", lambdas={"l2": [0.01]}))
    with pytest.raises(ValueError, match="loss 'task' takes no detector; its arguments: task_weight, network"):
        sweep_configs(
            TrainingStage(
                profile="smoke", lambdas={"task": [0.01]}, loss_kwargs={"task": {"detector": "x"}}, warm_start={}
            )
        )
    with pytest.raises(ValueError, match="other_models: unknown model 'roi'; available: "):
        sweep_configs(TrainingStage(profile="smoke", other_models={"roi": {"object": [0.05]}}))
    with pytest.raises(ValueError, match="02_train_codecs: unknown setting.s. OBJECT_LAMBDAS"):
        TrainingStage.from_params({"OBJECT_LAMBDAS": [0.05]})
    with pytest.raises(ValueError, match="STEPS must be int, got '30k'"):
        TrainingStage.from_params({"STEPS": "30k"})


def test_the_compared_methods_are_selectable_in_the_recipe(project_root):
    """The task loss is one more entry of LAMBDAS (its network named in LOSS_KWARGS), the ROI codec one of
    OTHER_MODELS: both become runs of the same recipe, in their own folders, from scratch."""
    stage = TrainingStage.from_profile(
        "demo",
        lambdas={"object": [0.015], "mse": [0.003], "task": [0.01, 0.003]},
        loss_kwargs={"task": {"network": "yolo", "task_weight": 500}},
        other_models={"mbt2018-mean-roi": {"object": [0.05, 0.015]}},
        warm_start={},
    )
    _, runs = sweep_configs(stage)
    assert [(r.model, r.loss, r.lmbda) for r in runs] == [
        ("mbt2018-mean", "object", 0.015),
        ("mbt2018-mean", "mse", 0.003),
        ("mbt2018-mean", "task", 0.01),
        ("mbt2018-mean", "task", 0.003),
        ("mbt2018-mean-roi", "object", 0.05),
        ("mbt2018-mean-roi", "object", 0.015),
    ]
    assert all(r.model_kwargs == stage.model_kwargs and r.steps == stage.steps and r.init is None for r in runs)
    assert runs[2].loss_kwargs == {"network": "yolo", "task_weight": 500}
    assert (
        runs[4].out_dir
        == run_dir("demo", "object", "mbt2018-mean-roi", 0.05)
        != run_dir("demo", "object", "mbt2018-mean", 0.05)
    )
    roi_only = TrainingStage.from_profile(
        "demo", lambdas={"mse": [0.003]}, other_models={"mbt2018-mean-roi": {"object": [0.05]}}, warm_start={}
    )
    assert [(r.model, r.loss) for r in sweep_configs(roi_only)[1]] == [
        ("mbt2018-mean", "mse"),
        ("mbt2018-mean-roi", "object"),
    ]


def test_warm_start_fine_tunes_a_compared_method_from_the_recipes_codec_of_its_lambda(project_root):
    """WARM_START: the ROI codec starts from the Object-MSE codec of the same lambda (its checkpoint, its
    own steps and lr, no decay), and the recipe names the source codec, not where its checkpoint lies."""
    stage = TrainingStage.from_profile(
        "demo",
        lambdas={"object": [0.05, 0.015], "mse": [0.003]},
        other_models={"mbt2018-mean-roi": {"object": [0.015]}},
        warm_start={"mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 300, "lr": 1e-4}},
    )
    _, runs = sweep_configs(stage)
    roi = runs[-1]
    assert (roi.model, roi.warm_start) == ("mbt2018-mean-roi", "mbt2018-mean-object-0.015")
    assert roi.init == run_dir("demo", "object", "mbt2018-mean", 0.015) / CHECKPOINT
    assert (roi.steps, roi.lr, roi.decay_at, roi.val_every) == (300, 1e-4, (), stage.val_every)
    assert all(not r.warm_start and r.init is None and r.steps == stage.steps for r in runs[:-1])
    moved = recipe_differences(dataclasses.replace(roi, init=Path("elsewhere/checkpoint.pt")), roi.to_meta())
    assert moved == []  # the zoo trains the same codec from its own run folders
    other = dataclasses.replace(roi, warm_start="mbt2018-mean-object-0.05")
    assert recipe_differences(other, roi.to_meta()) == [
        "warm_start 'mbt2018-mean-object-0.015' (asked 'mbt2018-mean-object-0.05')"
    ]
    for bad, message in (
        ({"from": "mbt2018-mean/mse", "steps": 3}, ": the recipe has no codec mbt2018-mean/mse at lambda 0.015"),
        ({"steps": 3}, " needs {from: model/loss, steps: N, lr: L}"),
        ({"from": "mbt2018-mean/object", "epochs": 3}, " needs {from: model/loss, steps: N, lr: L}"),
    ):
        with pytest.raises(ValueError, match=re.escape(f"warm_start: mbt2018-mean-roi/object{message}")):
            sweep_configs(dataclasses.replace(stage, warm_start={"mbt2018-mean-roi/object": bad}))


def test_warm_start_of_one_rate_from_another_rate_of_its_sweep(project_root):
    """A key ``model/loss/lambda`` fine-tunes that one codec, from the codec its ``from`` names with a lambda
    (the demo's Object-MSE 0.05 and 0.005 from 0.015); the other rates stay as they are."""
    spec = {"from": "mbt2018-mean/object/0.015", "steps": 400, "lr": 1e-3, "decay_at": [0.8]}
    stage = TrainingStage.from_profile(
        "demo",
        lambdas={"object": [0.05, 0.015, 0.005], "mse": [0.003]},
        other_models={"mbt2018-mean-roi": {"object": [0.05]}},
        warm_start={
            "mbt2018-mean/object/0.05": spec,
            "mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 3},
        },
    )
    runs = {(r.model, r.loss, r.lmbda): r for r in sweep_configs(stage)[1]}
    high = runs["mbt2018-mean", "object", 0.05]
    assert (high.warm_start, high.steps, high.lr, high.decay_at) == ("mbt2018-mean-object-0.015", 400, 1e-3, (0.8,))
    assert high.init == run_dir("demo", "object", "mbt2018-mean", 0.015) / CHECKPOINT
    assert not runs["mbt2018-mean", "object", 0.015].warm_start and not runs["mbt2018-mean", "object", 0.005].warm_start
    assert runs["mbt2018-mean-roi", "object", 0.05].warm_start == "mbt2018-mean-object-0.05"  # the model/loss key
    for key, bad, message in (
        (
            "mbt2018-mean/object/0.05",
            {"from": "mbt2018-mean/object/0.02"},
            "no codec mbt2018-mean/object at lambda 0.02",
        ),
        ("mbt2018-mean/object/0.05", {"from": "mbt2018-mean/object"}, "a codec cannot be fine-tuned from itself"),
        ("mbt2018-mean/object/0.05", {"from": "mbt2018-mean/object/high"}, "is not model/loss or model/loss/lambda"),
    ):
        with pytest.raises(ValueError, match=re.escape(f"warm_start: {key}: ") + ".*" + re.escape(message)):
            sweep_configs(dataclasses.replace(stage, warm_start={key: bad}))


def test_warm_started_runs_train_after_their_sources_level_by_level(project_root):
    """A chain (Object-MSE 0.015, then 0.05 from it, then the ROI codec at 0.05 from that) trains in that
    order; a source not among the runs (finished already) does not hold a run back; a cycle is refused."""
    stage = TrainingStage.from_profile(
        "demo",
        lambdas={"object": [0.05, 0.015], "mse": [0.003]},
        other_models={"mbt2018-mean-roi": {"object": [0.05]}},
        warm_start={
            "mbt2018-mean/object/0.05": {"from": "mbt2018-mean/object/0.015"},
            "mbt2018-mean-roi/object": {"from": "mbt2018-mean/object"},
        },
    )
    runs = sweep_configs(stage)[1]
    names = [[f"{c.model}/{c.loss}/{c.lmbda:g}" for c in level] for level in warm_start_levels(runs)]
    assert names == [
        ["mbt2018-mean/object/0.015", "mbt2018-mean/mse/0.003"],
        ["mbt2018-mean/object/0.05"],
        ["mbt2018-mean-roi/object/0.05"],
    ]
    unfinished = [c for c in runs if c.lmbda != 0.015]  # 0.015 finished: 0.05 goes first
    assert [len(level) for level in warm_start_levels(unfinished)] == [2, 1]
    high, mid = runs[:2]
    cycle = [high, dataclasses.replace(mid, warm_start="mbt2018-mean-object-0.05")]
    with pytest.raises(ValueError, match="warm_start: a cycle among"):
        warm_start_levels(cycle)


def test_a_base_model_warm_starts_every_codec(project_root):
    params = {
        **notebook_params("demo", "02_train_codecs"),
        "BASE_STEPS": 100,
        "BASE_LAMBDA": 0.003,
        "WARM_START": {},
        "OTHER_MODELS": {},
    }  # a dict, as the zoo passes
    base, runs = sweep_configs(params)
    assert base is not None and base.loss == "mse" and base.steps == 100
    assert all(r.init == base.out_dir / CHECKPOINT for r in runs)


def test_paper_sweep_is_the_papers(project_root):
    params = notebook_params("paper", "02_train_codecs")
    base, runs = sweep_configs(params)
    assert base is None
    assert [r.lmbda for r in runs if r.loss == "object"] == [0.05, 0.02, 0.01, 0.005]
    assert [r.lmbda for r in runs if r.loss == "mse"] == [0.01, 0.005, 0.002, 0.001]
    assert all(r.model == "tcm-large" and r.lr == 1e-4 and r.clip_max_norm == 1.0 for r in runs)


def test_trained_codecs_lists_only_finished_runs(project_root):
    val = {"bpp": 0.2, "psnr": 30.0, "object_psnr": 31.0, "background_psnr": 29.0}
    fake_finished_run("smoke", "object", 0.05, val)
    fake_finished_run("smoke", "mse", 0.01, val)
    unfinished = run_dir("smoke", "mse", "tcm-tiny", 0.002)
    unfinished.mkdir(parents=True)
    (unfinished / CHECKPOINT).write_bytes(b"weights")
    codecs = trained_codecs("smoke")
    assert [(c.model, c.loss, c.lmbda) for c in codecs] == [("tcm-tiny", "object", 0.05), ("tcm-tiny", "mse", 0.01)]
    assert codecs[0].codec_id == "tcm-tiny-object@0.05" and codecs[0].path.name == CHECKPOINT
    assert [c.method for c in codecs] == ["Object-MSE", "MSE"]
    assert is_finished(run_config("smoke", "object", 0.05, 10))
    assert not is_finished(run_config("smoke", "object", 0.05, 11))  # fewer steps than asked: extended, not reused


def test_a_finished_run_made_otherwise_is_refused_naming_what_differs(project_root):
    """Reuse needs the whole recipe and the data to match, not the step count alone (a time budget aside)."""
    val = {"bpp": 0.2, "psnr": 30.0, "object_psnr": 31.0, "background_psnr": 29.0}
    fake_finished_run("smoke", "object", 0.05, val)
    with pytest.raises(RunMismatch, match=r"lr 0.0001 \(asked 0.001\)"):
        is_finished(run_config("smoke", "object", 0.05, 10, lr=1e-3))
    with pytest.raises(RunMismatch, match=r"loss_kwargs .*'average': 'image'.*asked .*'average': 'object'"):
        is_finished(run_config("smoke", "object", 0.05, 10, loss_kwargs={"average": "object"}))
    with pytest.raises(RunMismatch, match=r"steps 10 \(asked 5\)"):
        is_finished(run_config("smoke", "object", 0.05, 5))
    # how a run goes is not what it learns: workers, caching, checkpoints, a time budget
    assert is_finished(run_config("smoke", "object", 0.05, 10, workers=2, cache_images=True, checkpoint_every=5))
    assert is_finished(run_config("smoke", "object", 0.05, 5, time_budget=60.0))
    summary = json.loads((run_dir("smoke", "object", "tcm-tiny", 0.05) / SUMMARY).read_text())
    summary["data_fingerprint"] = "0" * 64
    (run_dir("smoke", "object", "tcm-tiny", 0.05) / SUMMARY).write_text(json.dumps(summary))
    with pytest.raises(RunMismatch, match="data"):
        is_finished(run_config("smoke", "object", 0.05, 10))


def test_a_summary_written_before_the_loss_registry_is_read(project_root):
    """Old records hold object_average instead of loss_kwargs, and no method: both are derived."""
    val = {"bpp": 0.2, "psnr": 30.0, "object_psnr": 31.0, "background_psnr": 29.0}
    old = {k: v for k, v in run_config("smoke", "object", 0.05).to_meta().items() if k != "loss_kwargs"}
    fake_finished_run("smoke", "object", 0.05, val, config={**old, "object_average": "image"})
    assert is_finished(run_config("smoke", "object", 0.05))
    with pytest.raises(RunMismatch, match="loss_kwargs"):
        is_finished(run_config("smoke", "object", 0.05, loss_kwargs={"average": "object"}))
    assert trained_codecs("smoke")[0].method == "Object-MSE"


def test_region_bd_psnr_measures_the_shift(project_root):
    for lmbda, bpp in [(0.001, 0.1), (0.003, 0.2), (0.01, 0.4)]:
        psnr = 25 + 5 * math.log2(bpp / 0.1)
        fake_finished_run(
            "smoke", "mse", lmbda, {"bpp": bpp, "psnr": psnr, "object_psnr": psnr, "background_psnr": psnr}
        )
        fake_finished_run(
            "smoke",
            "object",
            5 * lmbda,
            {"bpp": bpp, "psnr": psnr - 1, "object_psnr": psnr + 3, "background_psnr": psnr - 2},
        )
    bd = region_bd_psnr("smoke", "tcm-tiny")
    assert bd["object"] == pytest.approx(3.0, abs=1e-6)
    assert bd["background"] == pytest.approx(-2.0, abs=1e-6)
    assert bd["whole"] == pytest.approx(-1.0, abs=1e-6)
    (path,) = [p for p in write_results("smoke") if p.stem == "tcm-tiny-object"]
    res = json.loads(path.read_text())
    assert res["name"] == "tcm-tiny-object" and "real bitstream" in res["description"]
    assert (
        res["results"]["bpp"] == sorted(res["results"]["bpp"])
        and res["results"]["codec_id"][0] == "tcm-tiny-object@0.005"
    )


def test_bd_psnr_needs_two_points():
    one = {"bpp": [0.1], "object_psnr": [30.0]}
    assert math.isnan(bd_psnr(one, one, "object_psnr"))


def test_cli_rejects_bad_settings(project_root, capsys):
    from icm_lib.cli import main

    for bad in ("-1", "inf", "nan"):
        assert main(["train", "--profile", "smoke", "--loss", "mse", "--lambdas", bad]) == 2
        err = capsys.readouterr().err
        assert "lambda must be a positive finite number" in err and "checkpoint" not in err
    assert main(["train", "--profile", "smoke", "--init", "/no/such/checkpoint.pt", "--loss", "mse"]) == 2
    assert "no checkpoint /no/such/checkpoint.pt" in capsys.readouterr().err
    assert main(["train", "--profile", "smoke", "--loss", "mse", "--decay-at", "0.5", "1.5"]) == 2
    assert "decay_at takes fractions of the steps between 0 and 1, got [0.5, 1.5]" in capsys.readouterr().err


def test_a_damaged_finished_run_is_an_error_not_a_reuse(project_root):
    """A truncated checkpoint or a malformed summary.json is named in one line, never taken as a finished codec."""
    from icm_lib.errors import UserError

    val = {"bpp": 0.2, "psnr": 30.0, "object_psnr": 31.0, "background_psnr": 29.0}
    cfg = fake_finished_run("smoke", "mse", 0.01, val)
    out = cfg.out_dir
    assert is_finished(cfg)
    data = (out / CHECKPOINT).read_bytes()
    (out / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="checkpoint"):
        is_finished(cfg)
    (out / SUMMARY).write_text("{not json")
    with pytest.raises(UserError, match="summary.json: malformed JSON"):
        trained_codecs("smoke")


def test_icm_train_records_the_recipes_codecs_for_the_coding_stage(smoke_root, tmp_path, monkeypatch):
    """`icm train` leaves notebook 02's record, as the notebook does: the coding stage codes what it trained."""
    import shutil

    from icm_lib.cli import main
    from icm_lib.evaluate.coding.sweep import learned_codecs
    from icm_lib.notebook import read_record

    shutil.copytree(smoke_root, tmp_path / "project", symlinks=True)
    monkeypatch.setenv("ICM_ROOT", str(tmp_path / "project"))
    args = ["train", "--profile", "smoke", "--loss", "mse", "--lambdas", "0.01", "--steps", "1", "--val-every", "0"]
    assert main([*args, "--final-val-images", "1", "--empty-val-images", "0"]) == 0
    model = TrainingStage.from_profile("smoke").model
    rec = read_record("02_train_codecs", "smoke")
    assert rec["codecs"] == [f"{model}-mse@0.01"] and rec["zoo"] is False and rec["command"] == "icm train"
    assert [c.id for c in learned_codecs("smoke")] == [f"{model}-mse@0.01"]


def test_a_chain_of_warm_starts_is_drawn_from_the_first_sources_steps(tmp_path):
    """The zoo figure draws a fine-tune after its source's steps, and a fine-tune of a fine-tune (the ROI
    codec at 0.05 from Object-MSE 0.05 from 0.015) after both."""
    from icm_lib.checkpoint import read_weights_only, save_checkpoint
    from icm_lib.models import build
    from icm_lib.plots.training import warm_start_offset

    model = build("mbt2018-mean", {"N": 8, "M": 16})
    chain = [("object-0.015", 10500, None), ("object-0.05", 4000, "object-0.015"), ("roi-0.05", 1500, "object-0.05")]
    for name, step, source in chain:
        init = str(tmp_path / source / CHECKPOINT) if source else None
        meta = {"step": step, "loss": "object", "train_config": {"warm_start": source or "", "init": init}}
        save_checkpoint(tmp_path / name / CHECKPOINT, model, meta)
    assert [warm_start_offset(tmp_path / name) for name, _, _ in chain] == [0, 10500, 14500]
    # ``icm train --init`` (an experiment continuing a codec, no WARM_START) continues its curve too;
    # the published TCM weights (``--init-official``) are no checkpoint of ours and have no steps
    for name, official in (("continued", False), ("official", True)):
        config = {"warm_start": "", "init": str(tmp_path / "object-0.015" / CHECKPOINT), "init_official": official}
        save_checkpoint(tmp_path / name / CHECKPOINT, model, {"step": 5, "loss": "object", "train_config": config})
    assert [warm_start_offset(tmp_path / name) for name in ("continued", "official")] == [10500, 0]
    # the source trains on to 14,000 steps: its fine-tunes are still drawn from where they started
    save_checkpoint(tmp_path / "object-0.015" / CHECKPOINT, model, {"step": 14000, "loss": "object"})
    for name, _, source in chain[1:]:
        meta = read_weights_only(tmp_path / name / CHECKPOINT)["meta"]
        started = {"from": source, "step": 10500 if source == "object-0.015" else 4000}
        save_checkpoint(tmp_path / name / CHECKPOINT, model, {**meta, "warm_start": started})
    assert [warm_start_offset(tmp_path / name) for name, _, _ in chain] == [0, 10500, 14500]
    # a codec grown from another model's (GROWN_FROM) whose source is no run here: from the recorded step
    config = {"warm_start": "mbt2018-mean-object-0.015", "init": str(tmp_path / "elsewhere" / CHECKPOINT)}
    started = {"from": "mbt2018-mean-object-0.015", "step": 45000}
    save_checkpoint(
        tmp_path / "grown" / CHECKPOINT, model, {"step": 7500, "train_config": config, "warm_start": started}
    )
    config = {"warm_start": "grown", "init": str(tmp_path / "grown" / CHECKPOINT)}
    save_checkpoint(tmp_path / "tuned" / CHECKPOINT, model, {"step": 10, "train_config": config})
    assert [warm_start_offset(tmp_path / name) for name in ("grown", "tuned")] == [45000, 52500]


def test_a_fine_tune_is_trained_anew_when_its_source_trains_on(smoke_root, tmp_path, monkeypatch, one_thread):
    """The recipe's steps go up: the source codec is extended, and the ROI codec fine-tuned from its earlier
    state is moved aside (kept, under ``stale/``) and fine-tuned again from the source as it is now."""
    import shutil

    from icm_lib.training.loop import started_from
    from icm_lib.training.sweep import train_sweeps

    shutil.copytree(smoke_root, tmp_path / "project", symlinks=True)
    monkeypatch.setenv("ICM_ROOT", str(tmp_path / "project"))
    params = {
        **notebook_params("smoke", "02_train_codecs"),
        "MODEL": "mbt2018-mean",
        "MODEL_KWARGS": {"N": 8, "M": 16},
        "LAMBDAS": {"object": [0.05]},
        "OTHER_MODELS": {"mbt2018-mean-roi": {"object": [0.05]}},
        "WARM_START": {"mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1, "lr": 1e-9}},
        "BASE_STEPS": 0,
        "STEPS": 1,
        "PROCESSES": 1,
        "VAL_EVERY": 0,
        "FINAL_VAL_IMAGES": 1,
    }
    train_sweeps(params)
    source, roi = sweep_configs(params)[1]
    assert started_from(roi.out_dir / CHECKPOINT) == {"from": "mbt2018-mean-object-0.05", "step": 1}
    assert train_sweeps(params) and started_from(roi.out_dir / CHECKPOINT)["step"] == 1  # nothing new: reused
    assert not (roi.out_dir.parent.parent / "stale").exists()
    train_sweeps({**params, "STEPS": 2})
    assert started_from(roi.out_dir / CHECKPOINT) == {"from": "mbt2018-mean-object-0.05", "step": 2}
    moved = list((roi.out_dir.parent.parent / "stale" / "object").iterdir())
    assert [p.name.startswith("mbt2018-mean-roi_lambda0.05-") for p in moved] == [True]
    assert started_from(moved[0] / CHECKPOINT)["step"] == 1
