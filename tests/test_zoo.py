"""The zoo: export, verified loading, refusal of modified files and foreign data, resuming from the zoo alone."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from conftest import REPO

PARAMS = {
    "MODEL": "mbt2018-mean",
    "MODEL_KWARGS": {"N": 8, "M": 16},
    "DATASET": "shapes",
    "LAMBDAS": {"object": [0.05], "mse": [0.01]},
    "OTHER_MODELS": {},
    "WARM_START": {},
    "BASE_STEPS": 0,
    "STEPS": 2,
    "BATCH_SIZE": 2,
    "CROP_SIZE": 64,
    "LR": 1e-4,
    "DECAY_AT": [0.9],
    "CHECKPOINT_EVERY": 1,
    "VAL_EVERY": 1,
    "VAL_IMAGES": 2,
    "FINAL_VAL_IMAGES": 2,
    "PROCESSES": 1,
    "PROFILE": "smoke",
}


@pytest.fixture(scope="module")
def half_zoo(smoke_root, tmp_path_factory, one_thread):
    """A smoke project and a zoo of two codecs exported after 1 of their 2 steps; (root, zoo root)."""
    from icm_lib import zoo

    root = tmp_path_factory.mktemp("zoo-project")
    shutil.copytree(smoke_root, root / "project", symlinks=True)
    env = {"ICM_ROOT": str(root / "project"), "ICM_ZOO": str(root / "zoo")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        zoo.train(dict(PARAMS), chunk=1, rounds=1)
    return root / "project", root / "zoo"


@pytest.fixture
def zoo_env(half_zoo, tmp_path, monkeypatch):
    """A private copy of the project and its half-trained zoo, for tests that change them."""
    project, zoo_root = tmp_path / "project", tmp_path / "zoo"
    shutil.copytree(half_zoo[0], project, symlinks=True)
    shutil.copytree(half_zoo[1], zoo_root)
    monkeypatch.setenv("ICM_ROOT", str(project))
    monkeypatch.setenv("ICM_ZOO", str(zoo_root))
    return project, zoo_root / "smoke"


def test_export_writes_weights_manifest_and_logs(zoo_env):
    from icm_lib import zoo

    _, folder = zoo_env
    items = {e["name"]: e for e in zoo.entries("smoke")}
    assert set(items) == {"mbt2018-mean-object-0.05", "mbt2018-mean-mse-0.01"}
    for item in items.values():
        assert item["loss"] in ("object", "mse") and item["lmbda"] in (0.05, 0.01)
        assert (item["steps"], item["target_steps"], item["finished"]) == (1, 2, False)
        assert item["sha256"] == zoo.file_sha256(folder / item["file"])
        assert item["model_config"] == {"N": 8, "M": 16}
        assert item["data"]["spec"]["dataset"] == "shapes" and item["data"]["fingerprint"]
        rows = [json.loads(line) for line in (folder / item["log"]).read_text().splitlines()]
        val = [r for r in rows if r["split"] == "val"]
        assert val and {"object_bit_share", "empty_bpp", "object_psnr", "background_psnr"} <= set(val[-1])
        assert item["val"] == val[-1]
    assert zoo.verify("smoke") == []


def test_load_gives_an_eval_codec_that_codes(zoo_env):
    import torch

    from icm_lib import zoo
    from icm_lib.bitstream import decode, encode

    model = zoo.load("smoke", "mbt2018-mean-object-0.05")
    assert not model.training
    x = torch.rand(3, 64, 96)
    x_hat = decode(model, encode(model, x))
    assert tuple(x_hat.shape[-2:]) == (64, 96)


def test_load_refuses_a_modified_file(zoo_env):
    from icm_lib import zoo
    from icm_lib.errors import UserError

    _, folder = zoo_env
    item = zoo.entry("smoke", "mbt2018-mean-mse-0.01")
    path = folder / item["file"]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its manifest"):
        zoo.load("smoke", item["name"])
    assert [name for name, _ in zoo.verify("smoke")] == [item["name"]]
    path.unlink()
    with pytest.raises(UserError, match="is missing"):
        zoo.load("smoke", item["name"])


def test_load_refuses_a_codec_trained_on_other_data(zoo_env):
    from icm_lib import zoo
    from icm_lib.errors import UserError
    from icm_lib.paths import dataset_dir

    marker = dataset_dir("smoke", "shapes") / "synth.json"
    spec = json.loads(marker.read_text())
    marker.write_text(json.dumps({**spec, "seed": spec["seed"] + 1}))
    with pytest.raises(UserError, match="trained on other data"):
        zoo.load("smoke", "mbt2018-mean-object-0.05")
    assert zoo.load("smoke", "mbt2018-mean-object-0.05", verify_data=False) is not None


def test_unknown_profile_and_codec_are_one_line_errors(zoo_env):
    from icm_lib import zoo
    from icm_lib.errors import UserError

    with pytest.raises(UserError, match="has no zoo"):
        zoo.entries("demo-missing")
    with pytest.raises(UserError, match="no codec 'nope'"):
        zoo.load("smoke", "nope")


def test_training_resumes_from_the_zoo_weights_alone(zoo_env):
    """A new machine has the committed zoo and nothing else: training continues from its weights and step."""
    from icm_lib import zoo
    from icm_lib.checkpoint import load_checkpoint
    from icm_lib.paths import data_dir

    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    before = zoo.load("smoke", "mbt2018-mean-object-0.05")
    runs = zoo.zoo_runs(dict(PARAMS))
    assert all(r.out_dir.parent.parent == data_dir("smoke") / "zoo-runs" for r in runs)
    assert zoo.seed_runs("smoke", runs) == ["mbt2018-mean-object-0.05", "mbt2018-mean-mse-0.01"]
    seeded, meta, state = load_checkpoint(runs[0].out_dir / "checkpoint.pt")
    assert state["step"] == 1 and "optimizer" not in state
    assert all((a == b).all() for a, b in zip(before.state_dict().values(), seeded.state_dict().values()))
    zoo.train(dict(PARAMS), chunk=1)
    items = {e["name"]: e for e in zoo.entries("smoke")}
    assert all(e["steps"] == 2 and e["finished"] for e in items.values())
    steps = [
        json.loads(line)["step"]
        for line in (zoo.zoo_dir("smoke") / items["mbt2018-mean-object-0.05"]["log"]).read_text().splitlines()
        if json.loads(line)["split"] == "val"
    ]
    assert steps[0] == 1 and steps[-1] == 2  # the zoo's log continued, not restarted


def test_a_fine_tune_starts_from_a_source_finished_in_the_zoo_alone(zoo_env, capsys):
    """A new machine: the source of a fine-tune is finished in the zoo only. Seeded from it, the source counts
    as finished, so the fine-tune trains from it instead of waiting for a source that never trains again."""
    from icm_lib import zoo
    from icm_lib.paths import data_dir

    params = {
        **PARAMS,
        "OTHER_MODELS": {"mbt2018-mean-roi": {"object": [0.05]}},
        "WARM_START": {"mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1, "val_every": 1}},
    }
    zoo.train(params, chunk=1, only=["mbt2018-mean-roi-*"])  # its source is at step 1 of 2 in the zoo
    assert "waits for its source mbt2018-mean-object-0.05, which is not finished" in capsys.readouterr().out
    zoo.train(dict(PARAMS), chunk=1)  # both codecs finished and exported
    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    zoo.train(params, chunk=1, only=["mbt2018-mean-roi-*"])
    items = {e["name"]: e for e in zoo.entries("smoke")}
    fine_tune = items["mbt2018-mean-roi-object-0.05"]
    assert (fine_tune["steps"], fine_tune["finished"]) == (1, True)
    assert fine_tune["warm_start"]["from"] == "mbt2018-mean-object-0.05"
    assert fine_tune["warm_start"]["sha256"] == items["mbt2018-mean-object-0.05"]["sha256"]


def test_install_places_the_zoo_codecs_for_notebooks_03_and_04(zoo_env):
    from icm_lib import zoo
    from icm_lib.training.sweep import trained_codecs

    params = {**PARAMS, "ZOO": True}
    assert trained_codecs("smoke") == []  # the zoo trains in zoo-runs/, not in the pipeline's codecs/
    codecs = zoo.obtain_codecs(params)
    assert {c.codec_id for c in codecs} == {"mbt2018-mean-object@0.05", "mbt2018-mean-mse@0.01"}
    summary = codecs[0].summary()
    assert summary["zoo"]["name"].startswith("mbt2018-mean-") and summary["val"]["bpp"] > 0
    assert zoo.install("smoke", params) == ["mbt2018-mean-object-0.05", "mbt2018-mean-mse-0.01"]  # in place already
    assert len(trained_codecs("smoke")) == 2


def test_the_zoo_stores_the_transforms_in_half_precision_and_the_entropy_models_exact(zoo_env, capsys):
    import torch
    from safetensors.torch import load_file

    from icm_lib import zoo
    from icm_lib.cli import main

    _, folder = zoo_env
    item = zoo.entry("smoke", "mbt2018-mean-object-0.05")
    stored = load_file(str(folder / item["file"]))
    assert item["precision"] == "float16"
    assert stored["g_a.0.weight"].dtype == torch.float16 and stored["h_s.0.weight"].dtype == torch.float16
    assert stored["entropy_bottleneck.matrices.0"].dtype == torch.float32
    assert stored["gaussian_conditional.scale_table"].dtype == torch.float32
    assert stored["entropy_bottleneck._quantized_cdf"].dtype == torch.int32
    assert item["stored"] == zoo.STORED and "gaussian_conditional._quantized_cdf" not in stored
    model = zoo.load("smoke", item["name"])
    assert model.g_a[0].weight.dtype == torch.float32
    assert torch.equal(model.g_a[0].weight, stored["g_a.0.weight"].float())
    # the Gaussian conditional's CDF tables, built from the stored scale table, are those of the trained codec
    from icm_lib.checkpoint import load_checkpoint
    from icm_lib.training.loop import CHECKPOINT

    (run,) = [c for c in zoo.zoo_runs(dict(PARAMS)) if c.loss == "object"]
    trained = load_checkpoint(run.out_dir / CHECKPOINT)[0].gaussian_conditional
    for table in zoo.GAUSSIAN_TABLES:
        assert torch.equal(getattr(model.gaussian_conditional, table), getattr(trained, table))
    # a zoo exported before (full-precision files) is stored anew on the next export, its records kept as they were
    data = json.loads((folder / "manifest.json").read_text())
    for e in data["codecs"]:
        e.pop("precision")
        e.pop("stored")
        e["hardware"] = ["an earlier GPU"]
    (folder / "manifest.json").write_text(json.dumps(data))
    from icm_lib.paths import data_dir

    shutil.rmtree(data_dir("smoke") / "zoo-runs")  # the runs of this machine, as a machine with the zoo alone
    assert len(zoo.seed_runs("smoke", zoo.zoo_runs(dict(PARAMS)))) == 2
    zoo.export("smoke", dict(PARAMS), zoo.zoo_runs(dict(PARAMS)))
    again = zoo.entry("smoke", item["name"])
    assert (again["precision"], again["stored"], again["hardware"]) == ("float16", zoo.STORED, ["an earlier GPU"])
    assert again["train_config"] == item["train_config"] and again["val"] == item["val"]
    assert main(["zoo", "precision", "--profile", "smoke", "--images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "stored in float16" in printed and "mbt2018-mean-mse-0.01" in printed


def test_cli_list_and_verify(zoo_env, capsys):
    from icm_lib.cli import main

    _, folder = zoo_env
    assert main(["zoo", "list", "--profile", "smoke"]) == 0
    listed = capsys.readouterr().out
    assert "mbt2018-mean-object-0.05" in listed and "1/2" in listed
    # one codec per family: said so, rather than a BD-PSNR or a ratio of NaN
    assert "mbt2018-mean/object: one codec so far" in listed and "nan" not in listed
    assert "no curve of the MSE codecs (mbt2018-mean/mse) to compare with" in listed
    assert main(["zoo", "verify", "--profile", "smoke"]) == 0
    (folder / "mbt2018-mean-mse-0.01.safetensors").write_bytes(b"not weights")
    assert main(["zoo", "verify", "--profile", "smoke"]) == 2
    assert "1 of 2 zoo codecs failed verification" in capsys.readouterr().err


def test_cli_list_says_when_a_family_has_no_mse_curve_to_compare_with(zoo_env, capsys, monkeypatch):
    """Two codecs of a family but no MSE codecs of the recipe's model (a next zoo's folder): said, no NaN."""
    from icm_lib import zoo
    from icm_lib.cli import main

    nan = float("nan")
    codecs = [{"name": f"wide-object-{r}", "bpp": r, "empty_bpp": r / 10, "empty_ratio": nan} for r in (0.1, 0.2)]
    family = {"family": "wide/object", "anchor": "plain/mse", "codecs": codecs}
    family |= {f"{region}_bd_psnr": nan for region in ("object", "background", "whole")}
    monkeypatch.setattr(zoo, "effect", lambda profile: [family])
    assert main(["zoo", "list", "--profile", "smoke"]) == 0
    listed = capsys.readouterr().out
    assert "wide/object: no curve of the MSE codecs (plain/mse) to compare at equal bpp" in listed
    assert "nan" not in listed


def test_effect_compares_each_family_with_the_mse_codecs_at_equal_bpp(tmp_path, monkeypatch):
    """BD-PSNR per region and the bits on images without objects against the MSE curve at the same bpp,
    interpolated in log-log and extended beyond its ends, on a manifest whose answers are known."""
    from icm_lib import zoo

    def codec(model, loss, bpp, object_psnr, background_psnr, empty_bpp):
        val = {"bpp": bpp, "psnr": background_psnr, "object_psnr": object_psnr, "background_psnr": background_psnr}
        return {"name": f"{model}-{loss}-{bpp}", "model": model, "loss": loss, "val": {**val, "empty_bpp": empty_bpp}}

    db = lambda r, at: at + 10 * math.log10(r)  # noqa: E731  PSNR straight in log bpp: pchip is exact on it
    codecs = [codec("m", "mse", r, db(r, 20), db(r, 30), 0.8 * r**1.5) for r in (0.1, 0.2, 0.4, 0.8)]
    # the object codecs: 2 dB better in the objects and 12 dB worse on the background at every rate, and a
    # fifth of the MSE codecs' bits without objects, between the MSE rates and beyond both ends
    codecs += [codec("m", "object", r, db(r, 22), db(r, 18), 0.16 * r**1.5) for r in (0.05, 0.3, 1.2)]
    codecs += [codec("m", "roi", 0.3, 30, 20, 0.01), {"name": "unvalidated", "model": "m", "loss": "task"}]
    folder = tmp_path / "smoke"
    folder.mkdir()
    manifest = {"format": zoo.FORMAT, "version": zoo.VERSION, "recipe": {"MODEL": "m"}, "codecs": codecs}
    (folder / zoo.MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setenv("ICM_ZOO", str(tmp_path))
    found = {f["family"]: f for f in zoo.effect("smoke")}
    assert set(found) == {"m/object", "m/roi"}  # the MSE codecs are the anchor; a codec not validated is left out
    obj = found["m/object"]
    assert obj["anchor"] == "m/mse"
    assert obj["object_bd_psnr"] == pytest.approx(2.0, abs=1e-6)
    assert obj["background_bd_psnr"] == pytest.approx(-12.0, abs=1e-6)
    assert [c["bpp"] for c in obj["codecs"]] == [0.05, 0.3, 1.2]
    assert [c["empty_ratio"] for c in obj["codecs"]] == pytest.approx([0.2, 0.2, 0.2])
    roi = found["m/roi"]
    assert math.isnan(roi["object_bd_psnr"])  # one point is no curve
    assert roi["codecs"][0]["empty_ratio"] == pytest.approx(0.01 / (0.8 * 0.3**1.5))
    for mse in codecs[:4]:  # MSE codecs validated without images free of objects: no ratio, no error
        del mse["val"]["empty_bpp"]
    (folder / zoo.MANIFEST).write_text(json.dumps(manifest))
    assert all(math.isnan(c["empty_ratio"]) for f in zoo.effect("smoke") for c in f["codecs"])


@pytest.mark.parametrize("root", ["zoo", "zoo-next"])
def test_the_committed_zoo_matches_its_manifest(root):
    """Every file of the repository's demo zoo has its manifest's hash; it was trained on the demo's data.
    ``zoo-next``: the next zoo's codecs while they are trained, kept for a new machine to resume them (README)."""
    from icm_lib import zoo
    from icm_lib.data import synth

    folder = REPO / root / "demo"
    if not (folder / zoo.MANIFEST).is_file():
        pytest.skip(f"no {root}/demo in this checkout")
    data = json.loads((folder / zoo.MANIFEST).read_text())
    assert data["codecs"], "the demo zoo lists no codec"
    total = 0
    for item in data["codecs"]:
        path = folder / item["file"]
        assert zoo.file_sha256(path) == item["sha256"], item["name"]
        assert item["data"]["fingerprint"] == zoo.data_fingerprint(synth.spec(item["data"]["dataset"], "demo"))
        assert (folder / item["log"]).is_file()
        total += path.stat().st_size
    assert total <= 60 * 2**20  # the zoo's limit; the next zoo's codecs move into it once finished


def test_rounds_bring_the_codecs_furthest_behind_up_first(zoo_env):
    """A codec ahead waits while the others catch up, so every export compares codecs of equal training."""
    import dataclasses

    from icm_lib import zoo
    from icm_lib.training.loop import train_codec

    params = {**PARAMS, "STEPS": 3}
    runs = zoo.zoo_runs(params)
    train_codec(dataclasses.replace(runs[0], steps=3, stop_at=2))  # the object codec: 1 -> 2
    zoo.train(params, chunk=1, rounds=1)
    steps = {e["name"]: e["steps"] for e in zoo.entries("smoke")}
    assert steps == {"mbt2018-mean-object-0.05": 2, "mbt2018-mean-mse-0.01": 2}


def test_only_trains_the_codecs_named_and_leaves_the_others_as_they_are(zoo_env):
    """``icm zoo train --only``: continue some codecs (e.g. the Object-MSE sources) without the rest."""
    from icm_lib import zoo
    from icm_lib.errors import UserError

    before = {e["name"]: e for e in zoo.entries("smoke")}
    zoo.train({**PARAMS, "STEPS": 3}, chunk=2, only=["*-object-*"])
    after = {e["name"]: e for e in zoo.entries("smoke")}
    assert after["mbt2018-mean-object-0.05"]["steps"] == 3
    assert after["mbt2018-mean-mse-0.01"] == before["mbt2018-mean-mse-0.01"]
    with pytest.raises(UserError, match="no codec of the recipe matches 'mbt2018-mean-ssim-\\*'"):
        zoo.train(dict(PARAMS), only=["mbt2018-mean-ssim-*"])


def test_decay_at_on_the_cli_continues_a_codec_at_the_decayed_rate(zoo_env, monkeypatch, capsys):
    """``icm zoo train --steps N --decay-at F``: a codec continued past a decay point it has already passed
    trains on at the decayed lr (not back at the base rate), and the manifest records the schedule."""
    from icm_lib import zoo
    from icm_lib.cli import main

    monkeypatch.setattr(zoo, "recipe", lambda profile, overlay=None: {**PARAMS, "RESUME": True})
    argv = ["zoo", "train", "--profile", "smoke", "--only", "*-object-*", "--steps", "4", "--chunk", "3"]
    assert main([*argv, "--decay-at", "1.5"]) == 2
    assert "--decay-at takes fractions of the steps between 0 and 1, got [1.5]" in capsys.readouterr().err
    assert main([*argv, "--decay-at", "0.25"]) == 0
    items = {e["name"]: e for e in zoo.entries("smoke")}
    source = items["mbt2018-mean-object-0.05"]
    assert source["steps"] == 4 and source["train_config"]["decay_at"] == [0.25]
    assert items["mbt2018-mean-mse-0.01"]["steps"] == 1  # not named: as the half zoo left it
    project, _ = zoo_env
    metrics = next(project.glob("data/smoke/zoo-runs/object/*/metrics.jsonl"))
    lrs = {r["step"]: r["lr"] for r in map(json.loads, metrics.read_text().splitlines()) if r["split"] == "train"}
    assert lrs[1] == pytest.approx(1e-4)  # the first step, under the recipe's decay at 0.9
    assert all(lrs[step] == pytest.approx(1e-5) for step in (2, 3, 4))  # past 0.25 x 4 steps: decayed


def test_a_time_budget_fixes_each_codecs_steps_and_schedule_in_one_round(zoo_env, monkeypatch):
    """`--time-budget`: each run times its steps, fixes `steps` to fit (the decay at its fractions of them),
    and the zoo records the steps reached as the target, finished."""
    from icm_lib import zoo
    from icm_lib.checkpoint import read_weights_only
    from icm_lib.training.loop import CHECKPOINT, Budget

    monkeypatch.setattr(Budget, "WARMUP", 1)
    monkeypatch.setattr(Budget, "TIMED", 2)
    params = {**PARAMS, "STEPS": 10**6, "TIME_BUDGET": 3.0, "CACHE_IMAGES": True, "DECAY_AT": [0.5]}
    runs = zoo.train(params, chunk=1, rounds=5)
    for cfg in runs:
        meta = read_weights_only(cfg.out_dir / CHECKPOINT)["meta"]
        steps = meta["train_config"]["steps"]
        assert 1 + 1 + 2 <= steps < 10**6 and meta["step"] == steps  # past the timed stretch, far below STEPS
        assert meta["train_config"]["val_every"] >= 1
        rows = [json.loads(line) for line in (cfg.out_dir / "metrics.jsonl").read_text().splitlines()]
        lrs = {r["step"]: r["lr"] for r in rows if r["split"] == "train"}  # the decay at half the fitted steps
        assert lrs[2] == pytest.approx(1e-4) and lrs[steps] == pytest.approx(1e-5)
    for item in zoo.entries("smoke"):
        assert item["finished"] and item["steps"] == item["target_steps"] == item["train_config"]["steps"]
        assert item["train_config"]["time_budget"] == 3.0 and item["train_config"]["cache_images"]


def test_a_warm_started_codec_waits_for_its_source_names_it_and_installs(zoo_env, capsys):
    """WARM_START: the ROI codec is fine-tuned from the finished Object-MSE codec of its lambda (its weights
    at the start), the manifest names that codec, and the pipeline takes the installed codec as finished."""
    import torch

    from icm_lib import zoo
    from icm_lib.training.sweep import is_finished, sweep_configs

    params = {
        **PARAMS,
        "OTHER_MODELS": {"mbt2018-mean-roi": {"object": [0.05]}},
        "WARM_START": {"mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1, "lr": 1e-9}},
    }
    zoo.train(params, chunk=1, rounds=1)  # the sources reach their 2 steps; the ROI codec waits for them
    assert [e["name"] for e in zoo.entries("smoke")] == ["mbt2018-mean-mse-0.01", "mbt2018-mean-object-0.05"]
    zoo.train(params, chunk=1)
    items = {e["name"]: e for e in zoo.entries("smoke")}
    roi, source = items["mbt2018-mean-roi-object-0.05"], items["mbt2018-mean-object-0.05"]
    assert roi["warm_start"] == {"from": source["name"], "steps": 2, "sha256": source["sha256"]}
    assert roi["steps"] == 1 and roi["finished"] and roi["model"] == "mbt2018-mean-roi"
    assert items["mbt2018-mean-mse-0.01"]["warm_start"] is None
    # the source's file in an earlier storage (its Gaussian tables included) is stored anew on export: the
    # fine-tune then names the new file, which holds the same weights
    from safetensors.torch import save_file

    from icm_lib.io import file_sha256

    folder = zoo.zoo_dir("smoke")
    earlier = zoo.load("smoke", source["name"]).state_dict()
    save_file({k: v.contiguous() for k, v in earlier.items()}, str(folder / source["file"]))
    data = json.loads((folder / zoo.MANIFEST).read_text())
    for item in data["codecs"]:
        if item["name"] == source["name"]:
            item["sha256"] = file_sha256(folder / source["file"])
            del item["stored"]
        if item["name"] == roi["name"]:
            item["warm_start"]["sha256"] = file_sha256(folder / source["file"])
    (folder / zoo.MANIFEST).write_text(json.dumps(data))
    zoo.export("smoke", params, zoo.zoo_runs(params))
    items = {e["name"]: e for e in zoo.entries("smoke")}
    assert items[roi["name"]]["warm_start"]["sha256"] == items[source["name"]]["sha256"] == source["sha256"]
    started, tuned = zoo.load("smoke", source["name"]).state_dict(), zoo.load("smoke", roi["name"]).state_dict()
    transforms = [k for k in tuned if not k.startswith(("entropy_bottleneck.", "gaussian_conditional."))]
    assert all(torch.allclose(started[k], tuned[k], rtol=2e-3, atol=1e-4) for k in transforms)  # lr 1e-9, fp16
    codecs = zoo.obtain_codecs({**params, "ZOO": True})
    assert "mbt2018-mean-roi-object@0.05" in {c.codec_id for c in codecs}
    # installed, it is coded and plotted as the ROI codec, not as the Object-MSE codec whose loss it shares
    from icm_lib.evaluate.coding.codecs import LearnedCodec

    methods = {c.codec_id: LearnedCodec.from_checkpoint(c.path).identity["method"] for c in codecs}
    assert methods["mbt2018-mean-roi-object@0.05"] == "ROI, Object-MSE"
    assert methods["mbt2018-mean-object@0.05"] == "Object-MSE"
    assert all(is_finished(cfg) for cfg in sweep_configs(params)[1])  # the installed codec is the one asked for
    # on a new machine, the zoo's ROI codec is not resumed when it is not the recipe's fine-tune: the recipe
    # trains it from scratch, or its source has changed in the zoo since it was fine-tuned
    from icm_lib.paths import data_dir

    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    assert "mbt2018-mean-roi-object-0.05" not in zoo.seed_runs("smoke", zoo.zoo_runs({**params, "WARM_START": {}}))
    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    manifest = zoo.zoo_dir("smoke") / zoo.MANIFEST
    data = json.loads(manifest.read_text())
    for item in data["codecs"]:  # as if fine-tuned from an earlier state of its source
        if item["name"] == roi["name"]:
            item["warm_start"]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    runs = zoo.zoo_runs(params)  # left out of the codecs to train (``--only``), it is not said to be trained anew
    zoo.seed_runs("smoke", runs, chosen=[cfg for cfg in runs if cfg.model != "mbt2018-mean-roi"])
    assert "not among the codecs to train, the zoo's entry stays" in capsys.readouterr().out
    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    assert set(zoo.seed_runs("smoke", zoo.zoo_runs(params))) == {"mbt2018-mean-mse-0.01", "mbt2018-mean-object-0.05"}
    assert "not resumed from the zoo, its source" in capsys.readouterr().out
    zoo.train(params, chunk=1)  # fine-tuned again from the source as it is now, the same steps as before
    again = {e["name"]: e for e in zoo.entries("smoke")}[roi["name"]]
    assert again["warm_start"]["sha256"] == source["sha256"] and again["steps"] == 1


def test_a_codec_trained_past_the_recipes_steps_is_kept_not_refused(zoo_env):
    """A zoo codec may hold more steps than the recipe asks (a time budget fixed them): training the zoo
    leaves it as it is, where the pipeline's reuse check would call it another codec."""
    from icm_lib import zoo

    zoo.train(dict(PARAMS), chunk=1)  # both codecs to their 2 steps
    before = {e["name"]: e["sha256"] for e in zoo.entries("smoke")}
    zoo.train({**PARAMS, "STEPS": 1}, chunk=1)
    assert {e["name"]: e["sha256"] for e in zoo.entries("smoke")} == before


def test_a_codec_the_recipe_now_fine_tunes_from_another_rate_replaces_the_zoos(zoo_env):
    """Object-MSE 0.05 trained from scratch in the zoo; the recipe then fine-tunes it from 0.01 (a rate of its
    own sweep). The zoo's 0.05 is not resumed (it is another codec), the new one is trained from 0.01's
    weights, and its entry names that source and keeps none of the old codec's records."""
    from icm_lib import zoo
    from icm_lib.paths import data_dir

    params = {**PARAMS, "LAMBDAS": {"object": [0.05, 0.01], "mse": []}}
    zoo.train(params, chunk=2)
    old = {e["name"]: e for e in zoo.entries("smoke")}["mbt2018-mean-object-0.05"]
    assert old["warm_start"] is None
    tuned = {
        **params,
        "WARM_START": {"mbt2018-mean/object/0.05": {"from": "mbt2018-mean/object/0.01", "steps": 1, "lr": 1e-9}},
    }
    shutil.rmtree(data_dir("smoke") / "zoo-runs" / "object" / "mbt2018-mean_lambda0.05")
    zoo.train(tuned, chunk=2)
    items = {e["name"]: e for e in zoo.entries("smoke")}
    new, source = items["mbt2018-mean-object-0.05"], items["mbt2018-mean-object-0.01"]
    assert new["warm_start"] == {"from": source["name"], "steps": 2, "sha256": source["sha256"]}
    assert new["steps"] == new["target_steps"] == 1 and new["finished"]
    assert new["sha256"] != old["sha256"] and "earlier_train_config" not in new
    assert new["train_config"]["warm_start"] == source["name"] and new["hardware"] == [zoo.hardware()]


def test_fine_tunes_are_trained_anew_when_their_source_trains_on(zoo_env, capsys):
    """Object-MSE 0.05 fine-tuned from 0.01, the ROI codec from 0.05; then the recipe trains 0.01 longer.
    While 0.01 trains, the zoo keeps both fine-tunes' entries (they name 0.01's earlier state); once it is
    finished, both are moved aside (not deleted) and fine-tuned again, 0.05 from 0.01's new weights first."""
    from icm_lib import zoo
    from icm_lib.paths import codec_name, data_dir
    from icm_lib.training.loop import CHECKPOINT, started_from

    params = {
        **PARAMS,
        "LAMBDAS": {"object": [0.05, 0.01], "mse": []},
        "OTHER_MODELS": {"mbt2018-mean-roi": {"object": [0.05]}},
        "WARM_START": {
            "mbt2018-mean/object/0.05": {"from": "mbt2018-mean/object/0.01", "steps": 1, "lr": 1e-9},
            "mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1, "lr": 1e-9},
        },
    }
    shutil.rmtree(data_dir("smoke") / "zoo-runs" / "object" / "mbt2018-mean_lambda0.05")  # from scratch, 1 step
    zoo.train(params, chunk=2)
    before = {e["name"]: e for e in zoo.entries("smoke")}
    source, tuned, roi = "mbt2018-mean-object-0.01", "mbt2018-mean-object-0.05", "mbt2018-mean-roi-object-0.05"
    assert before[tuned]["warm_start"] == {"from": source, "steps": 2, "sha256": before[source]["sha256"]}
    runs = {codec_name(c.model, c.loss, c.lmbda): c for c in zoo.zoo_runs(params)}
    assert started_from(runs[tuned].out_dir / CHECKPOINT) == {"from": source, "step": 2}
    longer = {**params, "STEPS": 3}
    zoo.train(longer, chunk=1, rounds=1)  # 0.01 to step 3; the fine-tunes of its step 2 stay as they were
    during = {e["name"]: e for e in zoo.entries("smoke")}
    assert during[source]["steps"] == 3 and during[source]["sha256"] != before[source]["sha256"]
    assert [c["steps"] for c in during[source]["train_stages"]] == [2, 3]  # each stage's settings, in order
    assert during[source]["earlier_train_config"] == before[source]["train_config"]
    from icm_lib.cli import main

    assert main(["zoo", "list", "--profile", "smoke"]) == 0
    marked = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.endswith(" *")}
    assert marked == {tuned, roi}  # made from 0.01's earlier state, directly or through 0.05
    installed = {c.codec_id for c in zoo.obtain_codecs({**longer, "ZOO": True})}  # the pipeline: the zoo as it is
    assert installed == {"mbt2018-mean-object@0.01", "mbt2018-mean-object@0.05", "mbt2018-mean-roi-object@0.05"}
    assert during[tuned] == before[tuned] and during[roi] == before[roi]
    folder = zoo.zoo_dir("smoke")
    data = json.loads((folder / "manifest.json").read_text())
    for e in data["codecs"]:
        e["hardware"] = ["an earlier GPU"]  # where the old fine-tunes were made; the new ones are made here
    (folder / "manifest.json").write_text(json.dumps(data))
    zoo.train(longer, chunk=1)
    after = {e["name"]: e for e in zoo.entries("smoke")}
    assert after[tuned]["hardware"] == after[roi]["hardware"] == [zoo.hardware()]
    assert after[tuned]["warm_start"] == {"from": source, "steps": 3, "sha256": after[source]["sha256"]}
    assert after[roi]["warm_start"] == {"from": tuned, "steps": 1, "sha256": after[tuned]["sha256"]}
    assert after[tuned]["sha256"] != before[tuned]["sha256"] and after[roi]["sha256"] != before[roi]["sha256"]
    moved = sorted(p.name.rsplit("-", 2)[0] for p in (data_dir("smoke") / "zoo-runs" / "stale" / "object").iterdir())
    assert moved == ["mbt2018-mean-roi_lambda0.05", "mbt2018-mean_lambda0.05"]


def test_only_a_fine_tune_makes_it_anew_from_its_changed_source(zoo_env):
    """``--only`` a fine-tune whose source has trained on: it is made anew from the source's weights, though
    the source is not among the codecs named."""
    from icm_lib import zoo
    from icm_lib.paths import data_dir

    params = {
        **PARAMS,
        "LAMBDAS": {"object": [0.05], "mse": []},
        "OTHER_MODELS": {"mbt2018-mean-roi": {"object": [0.05]}},
        "WARM_START": {"mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1, "lr": 1e-9}},
    }
    source, roi = "mbt2018-mean-object-0.05", "mbt2018-mean-roi-object-0.05"
    zoo.train(params, chunk=2)
    zoo.train({**params, "STEPS": 3}, chunk=2, only=[source])
    before = {e["name"]: e for e in zoo.entries("smoke")}
    assert before[source]["steps"] == 3 and before[roi]["warm_start"]["steps"] == 2  # the ROI codec left as it was
    zoo.train({**params, "STEPS": 3}, chunk=2, only=[roi])
    after = {e["name"]: e for e in zoo.entries("smoke")}
    assert after[roi]["warm_start"] == {"from": source, "steps": 3, "sha256": before[source]["sha256"]}
    assert after[source] == before[source]
    assert [p.name.rsplit("-", 2)[0] for p in (data_dir("smoke") / "zoo-runs" / "stale" / "object").iterdir()] == [
        "mbt2018-mean-roi_lambda0.05"
    ]


def test_an_unfinished_fine_tune_waits_while_its_source_trains_on(zoo_env):
    """Both a source and its fine-tune unfinished (the zoo's files seeded on a GPU machine, the recipe asking
    for more steps of both): only the source trains; the fine-tune would be made anew from its new weights."""
    from icm_lib import zoo
    from icm_lib.checkpoint import read_weights_only
    from icm_lib.paths import codec_name
    from icm_lib.training.loop import CHECKPOINT

    source, tuned = "mbt2018-mean-object-0.01", "mbt2018-mean-object-0.05"
    params = {
        **PARAMS,
        "LAMBDAS": {"object": [0.05, 0.01], "mse": []},
        "WARM_START": {"mbt2018-mean/object/0.05": {"from": "mbt2018-mean/object/0.01", "steps": 1, "lr": 1e-9}},
    }
    shutil.rmtree(zoo.zoo_runs(params)[0].out_dir.parent / "mbt2018-mean_lambda0.05")
    zoo.train(params, chunk=2)  # 0.01 to its 2 steps, then 0.05 fine-tuned from it for 1
    longer = {
        **params,
        "STEPS": 4,
        "WARM_START": {"mbt2018-mean/object/0.05": {**params["WARM_START"]["mbt2018-mean/object/0.05"], "steps": 3}},
    }
    runs = {codec_name(c.model, c.loss, c.lmbda): c for c in zoo.zoo_runs(longer)}

    def step(name):
        return int(read_weights_only(runs[name].out_dir / CHECKPOINT)["meta"]["step"])

    assert (step(source), step(tuned)) == (2, 1)
    zoo.train(longer, chunk=1, rounds=1)  # the fine-tune is furthest behind, yet waits for its source
    assert (step(source), step(tuned)) == (3, 1)


def test_a_codec_whose_loss_cannot_be_built_here_is_left_out_with_its_fine_tunes(zoo_env, monkeypatch, capsys):
    """A bare GPU machine has no ultralytics: the task-loss codec (and a codec fine-tuned from it) is left out
    with one line each, and the rest of the zoo trains and is exported."""
    import sys

    from icm_lib import zoo

    monkeypatch.setitem(sys.modules, "ultralytics.nn.tasks", None)
    params = {
        **PARAMS,
        "LAMBDAS": {"object": [0.05], "mse": [0.01], "task": [0.01]},
        "OTHER_MODELS": {"mbt2018-mean-roi": {"task": [0.01]}},
        "WARM_START": {"mbt2018-mean-roi/task": {"from": "mbt2018-mean/task", "steps": 1}},
    }
    zoo.train(params, chunk=1)
    out = capsys.readouterr().out
    assert "[zoo] mbt2018-mean-task-0.01: left out here, the task loss runs a YOLO detector: install" in out
    assert "[zoo] mbt2018-mean-roi-task-0.01: left out here, its source mbt2018-mean-task-0.01 is left out" in out
    items = {e["name"]: e for e in zoo.entries("smoke")}
    assert set(items) == {"mbt2018-mean-object-0.05", "mbt2018-mean-mse-0.01"}
    assert all(item["finished"] for item in items.values())


GROWN = {
    **PARAMS,
    "MODEL": "mbt2018-mean-wide",
    "MODEL_KWARGS": {"N": 8, "M": 16, "N_enc": 12, "enc_blocks": 1},
    "LAMBDAS": {"object": [0.05, 0.02], "mse": [0.01]},
    "GROWN_FROM": {"model": "mbt2018-mean", "steps": 1, "lr": 1e-4, "val_every": 1},
}


def test_the_zoo_grows_its_codecs_into_the_next_recipes_model_from_the_zoo_alone(zoo_env, capsys):
    """The next recipe's model (a larger encoder) starts each codec from the zoo's codec of the same loss and
    lambda under the served model, on a machine that has the zoo and nothing else: the source is placed from
    the zoo, grown on loading, continued with GROWN_FROM's steps and named as the source in the entry. A codec
    the zoo has no source of trains from scratch with the recipe. The sources' entries stay as they are, the
    manifest keeps the served recipe and records the next one, and the grown codecs stay grown once the
    sources' entries are gone."""
    from icm_lib import zoo
    from icm_lib.checkpoint import read_weights_only
    from icm_lib.io import write_json
    from icm_lib.paths import data_dir

    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    sources = {e["name"]: e for e in zoo.entries("smoke")}
    zoo.train(dict(GROWN), chunk=2, served=dict(PARAMS))
    out = capsys.readouterr().out
    assert "mbt2018-mean-object-0.05: placed from the zoo, to grow the recipe's codec from" in out
    items = {e["name"]: e for e in zoo.entries("smoke")}
    for loss, lmbda in (("object", 0.05), ("mse", 0.01)):
        grown, source = items[f"mbt2018-mean-wide-{loss}-{lmbda}"], sources[f"mbt2018-mean-{loss}-{lmbda}"]
        assert grown["warm_start"] == {"from": source["name"], "steps": 1, "sha256": source["sha256"]}
        assert (grown["steps"], grown["target_steps"], grown["finished"]) == (1, 1, True)
        assert grown["model_config"] == GROWN["MODEL_KWARGS"] and grown["train_config"]["lr"] == 1e-4
        assert items[source["name"]] == source
    anew = items["mbt2018-mean-wide-object-0.02"]
    assert anew["warm_start"] is None and (anew["steps"], anew["target_steps"]) == (2, 2)
    recorded = zoo.manifest("smoke")
    assert recorded["recipe"]["MODEL"] == "mbt2018-mean" and recorded["next_recipe"]["GROWN_FROM"]["steps"] == 1
    assert zoo.verify("smoke") == []
    # the recipe switched: the pipeline's run folders get the grown codecs, recorded as the zoo made them
    codecs = zoo.obtain_codecs({**GROWN, "ZOO": True})
    assert {c.codec_id for c in codecs} >= {"mbt2018-mean-wide-object@0.05", "mbt2018-mean-wide-mse@0.01"}
    (installed,) = [c for c in codecs if c.codec_id == "mbt2018-mean-wide-object@0.05"]
    recorded_run = read_weights_only(installed.path)["meta"]["train_config"]
    assert (recorded_run["warm_start"], recorded_run["steps"]) == ("mbt2018-mean-object-0.05", 1)
    recorded["codecs"] = [e for e in recorded["codecs"] if e["model"] == "mbt2018-mean-wide"]
    write_json(zoo.zoo_dir("smoke") / zoo.MANIFEST, recorded)
    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    runs = {r.lmbda: r for r in zoo.zoo_runs(dict(GROWN)) if r.loss == "object"}
    assert (runs[0.05].warm_start, runs[0.05].steps) == ("mbt2018-mean-object-0.05", 1)
    assert (runs[0.02].warm_start, runs[0.02].steps) == ("", 2)
    assert zoo.seed_runs("smoke", list(runs.values())) == [
        "mbt2018-mean-wide-object-0.05",
        "mbt2018-mean-wide-object-0.02",
    ]


def test_the_next_recipe_comes_from_a_file_and_bad_ones_are_refused(tmp_path):
    from icm_lib import zoo
    from icm_lib.errors import UserError

    path = tmp_path / "next.yaml"
    path.write_text("02_train_codecs:\n  MODEL: mbt2018-mean-wide\n  GROWN_FROM: {model: mbt2018-mean, steps: 5}\n")
    params = zoo.recipe("demo", path)
    assert params["MODEL"] == "mbt2018-mean-wide" and params["GROWN_FROM"]["steps"] == 5 and params["RESUME"]
    assert params["LAMBDAS"] == zoo.recipe("demo")["LAMBDAS"]
    path.write_text("MODEL: mbt2018-mean-wide\nGROWN: {}\n")
    with pytest.raises(UserError, match="next.yaml: .*unknown setting.*GROWN"):
        zoo.recipe("demo", path)
    path.write_text("- MODEL\n")
    with pytest.raises(UserError, match="expected a mapping"):
        zoo.recipe("demo", path)
    with pytest.raises(UserError, match="no recipe file"):
        zoo.recipe("demo", tmp_path / "missing.yaml")
    assert zoo.recipe("demo", REPO / "zoo" / "demo" / "next-recipe.yaml")["GROWN_FROM"]["model"] == "mbt2018-mean"


def test_prune_drops_the_codecs_the_recipe_no_longer_has_and_refuses_while_it_lacks_one(zoo_env, capsys, monkeypatch):
    """Once the recipe serves other codecs (the grown ones), the zoo's others leave it: entry, file and log;
    listed first without --yes; refused while the zoo lacks a codec of the recipe, nothing dropped."""
    from icm_lib import zoo
    from icm_lib.cli import main
    from icm_lib.errors import UserError

    _, folder = zoo_env
    mse = zoo.entry("smoke", "mbt2018-mean-mse-0.01")
    recipe = {**PARAMS, "LAMBDAS": {"object": [0.05]}}
    monkeypatch.setattr(zoo, "recipe", lambda profile, overlay=None: {**recipe, "RESUME": True})
    assert main(["zoo", "prune", "--profile", "smoke"]) == 0
    assert "mbt2018-mean-mse-0.01: would be dropped (--yes drops it)" in capsys.readouterr().out
    assert (folder / mse["file"]).is_file() and len(zoo.entries("smoke")) == 2
    assert main(["zoo", "prune", "--profile", "smoke", "--yes"]) == 0
    assert [e["name"] for e in zoo.entries("smoke")] == ["mbt2018-mean-object-0.05"]
    assert not (folder / mse["file"]).exists() and not (folder / mse["log"]).exists()
    assert zoo.verify("smoke") == []
    with pytest.raises(UserError, match="lacks mbt2018-mean-object-0.02 of the recipe: nothing dropped"):
        zoo.prune("smoke", {**PARAMS, "LAMBDAS": {"object": [0.02]}})
    assert len(zoo.entries("smoke")) == 1


def test_merge_takes_another_zoo_folders_codecs_as_recorded_there_then_prune_serves_them(zoo_env, tmp_path, capsys):
    """The switch on a machine that has only the repository: the next recipe's codecs were kept in a zoo folder
    of their own (zoo-next); ``icm zoo merge`` takes them into the zoo with their records as they are (hardware,
    time), after checking every file (a modified one: nothing taken); prune then records the recipe served."""
    from icm_lib import zoo
    from icm_lib.cli import main
    from icm_lib.errors import UserError
    from icm_lib.io import write_json

    _, folder = zoo_env
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    zoo.train(dict(GROWN), chunk=2, served=dict(PARAMS))
    next_root = tmp_path / "zoo-next"
    shutil.copytree(folder, next_root / "smoke")
    shutil.rmtree(folder)
    shutil.copytree(plain, folder)
    before = (folder / zoo.MANIFEST).read_text()
    recorded = zoo.manifest("smoke", next_root / "smoke")  # as zoo-next holds them: without their sources
    sources = {e["name"]: e for e in recorded["codecs"] if e["model"] == "mbt2018-mean"}
    recorded["codecs"] = [e for e in recorded["codecs"] if e["name"] not in sources]
    for item in recorded["codecs"]:
        if item["warm_start"]:
            item["warm_start"]["sha256"] = None  # what an export into a folder without the source records
    write_json(next_root / "smoke" / zoo.MANIFEST, recorded)
    theirs = {e["name"]: e for e in recorded["codecs"]}
    grown = theirs["mbt2018-mean-wide-object-0.05"]
    weights = next_root / "smoke" / grown["file"]
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(UserError, match="does not match its manifest"):
        zoo.merge("smoke", next_root)
    assert (folder / zoo.MANIFEST).read_text() == before and not (folder / grown["file"]).exists()
    weights.write_bytes(data)
    with pytest.raises(UserError, match="is the smoke zoo itself"):
        zoo.merge("smoke", folder.parent)
    with pytest.raises(UserError, match="has no zoo"):
        zoo.merge("smoke", tmp_path / "nothing")

    assert main(["zoo", "merge", str(next_root), "--profile", "smoke"]) == 0
    assert f"{len(theirs)} codecs taken from {next_root}/smoke" in capsys.readouterr().out
    known = {e["name"]: e for e in zoo.entries("smoke")}
    for name, item in theirs.items():  # hardware, time and stages as recorded there, the source's sha256 added
        origin = item["warm_start"]
        if origin:
            origin["sha256"] = known[origin["from"]]["sha256"]
            assert origin["from"] in sources or origin["from"] in theirs
        assert known[name] == item
    assert not any(zoo.source_changed(e, known) for e in known.values())  # nothing to fine-tune again
    assert zoo.verify("smoke") == []
    assert sorted(zoo.prune("smoke", dict(GROWN))) == ["mbt2018-mean-mse-0.01", "mbt2018-mean-object-0.05"]
    served = zoo.manifest("smoke")
    assert served["recipe"]["MODEL"] == "mbt2018-mean-wide" and "next_recipe" not in served
    assert zoo.verify("smoke") == []


def test_a_grown_codec_keeps_its_sources_history_through_prune_install_and_the_figure(zoo_env):
    """The switch to the grown zoo drops the sources' weights but not their logs: each grown codec's entry names
    its source's log, install gives its run folder that log up to the step it was grown at, and notebook 02's
    figure draws the codec from step 0, its source's validations first (not from the step it was grown at)."""
    from icm_lib import zoo
    from icm_lib.paths import data_dir
    from icm_lib.plots.training import plot_validation_curves
    from icm_lib.training.loop import HISTORY
    from icm_lib.training.sweep import sweep_runs, training_stage

    _, folder = zoo_env
    shutil.rmtree(data_dir("smoke") / "zoo-runs")
    zoo.train(dict(GROWN), chunk=2, served=dict(PARAMS))
    source = zoo.entry("smoke", "mbt2018-mean-object-0.05")
    dropped = zoo.prune("smoke", dict(GROWN))
    assert sorted(dropped) == ["mbt2018-mean-mse-0.01", "mbt2018-mean-object-0.05"]
    grown = zoo.entry("smoke", "mbt2018-mean-wide-object-0.05")
    assert grown["warm_start"] == {
        "from": source["name"],
        "steps": 1,
        "sha256": source["sha256"],
        "log": source["log"],
        **{k: source[k] for k in ("train_seconds", "train_cpu_seconds", "hardware", "model", "model_config")},
        "train_config": source["train_config"],
    }
    assert (folder / source["log"]).is_file() and not (folder / source["file"]).exists()
    assert zoo.verify("smoke") == []
    zoo.export("smoke", dict(GROWN), zoo.zoo_runs(dict(GROWN)))  # exported again: the record of the source stays
    assert zoo.entry("smoke", grown["name"])["warm_start"] == grown["warm_start"]

    zoo.obtain_codecs({**GROWN, "ZOO": True})
    runs = sweep_runs(training_stage({**GROWN, "ZOO": True}))
    label = "mbt2018-mean-wide-object@0.05"
    history = [json.loads(line) for line in (runs[label] / HISTORY).read_text().splitlines()]
    assert [r["step"] for r in history if r["split"] == "val"] == [1]  # the source's, to the step it was grown at
    assert not (runs["mbt2018-mean-wide-object@0.02"] / HISTORY).exists()  # trained from scratch: no history
    fig = plot_validation_curves({label: runs[label]})
    drawn = fig.axes[0].lines[0]
    assert list(drawn.get_xdata()) == [1, 2] and drawn.get_label() == f"{label} (grown at step 1)"
    shares = fig.axes[3].lines[0].get_ydata()
    (source_val,) = [r for r in history if r["split"] == "val"]
    assert list(shares) == [source_val["object_bit_share"], grown["val"]["object_bit_share"]]
