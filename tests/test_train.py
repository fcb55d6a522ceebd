"""The trainer on the smoke data: it learns, resumes exactly, refuses bad checkpoints, stops on NaN.

A small ``bmshj2018-hyperprior`` stands in for TCM where the test is about the
loop's plumbing (it trains in milliseconds per step); notebook 02's test runs
``tcm-tiny``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from icm_lib.errors import UserError
from icm_lib.training import loop
from icm_lib.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SMALL = {"model": "bmshj2018-hyperprior", "model_kwargs": {"N": 16, "M": 24}}


@pytest.fixture
def train_root(smoke_root, tmp_path, monkeypatch) -> Path:
    """A fresh project root whose smoke datasets (with masks) are those of the session's ``smoke_root``."""
    monkeypatch.setenv("ICM_ROOT", str(smoke_root))
    from icm_lib.data.layout import DatasetLayout
    from icm_lib.data.masks import build_masks

    for split in ("train", "val"):
        build_masks(DatasetLayout.of("smoke", "shapes"), split, verbose=False)
    root = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / "data" / "smoke").mkdir(parents=True)
    (root / "data" / "smoke" / "datasets").symlink_to(smoke_root / "data" / "smoke" / "datasets")
    monkeypatch.setenv("ICM_ROOT", str(root))
    return root


def config(out_dir: Path, **overrides) -> TrainConfig:
    settings = dict(
        profile="smoke",
        loss="mse",
        lmbda=0.01,
        steps=6,
        batch_size=2,
        crop_size=64,
        lr=1e-3,
        checkpoint_every=3,
        decay_at=(0.5,),
        final_val_images=2,
        **SMALL,
    )
    return TrainConfig(out_dir, **{**settings, **overrides})


def train_losses(out_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (out_dir / loop.METRICS).read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def test_smoke_run_lowers_its_loss_and_writes_its_files(train_root, tmp_path):
    out = tmp_path / "run"
    summary = loop.train_codec(config(out, steps=30, checkpoint_every=10, decay_at=()))
    losses = train_losses(out)
    assert len(losses) == 30
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    assert summary["step"] == 30 and summary["val"]["images"] == 2
    assert summary["val"]["bpp"] > 0 and summary["val"]["psnr"] > 5
    assert json.loads((out / loop.SUMMARY).read_text())["step"] == 30


def test_interrupted_run_resumes_exactly(train_root, tmp_path, monkeypatch):
    from icm_lib.checkpoint import load_checkpoint

    loop.train_codec(config(tmp_path / "straight"))
    original = loop._step

    def killed_at_step_5(run, *args):
        if run.step == 4:
            raise KeyboardInterrupt
        original(run, *args)

    monkeypatch.setattr(loop, "_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        loop.train_codec(config(tmp_path / "resumed"))
    _, meta, state = load_checkpoint(tmp_path / "resumed" / loop.CHECKPOINT)
    assert meta["step"] == state["step"] == 3  # lost only the steps after the last checkpoint
    assert not (tmp_path / "resumed" / loop.SUMMARY).exists()
    monkeypatch.setattr(loop, "_step", original)
    summary = loop.train_codec(config(tmp_path / "resumed"))
    assert summary["step"] == 6
    straight, _, s_state = load_checkpoint(tmp_path / "straight" / loop.CHECKPOINT)
    resumed, _, r_state = load_checkpoint(tmp_path / "resumed" / loop.CHECKPOINT)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert s_state["lr_scheduler"]["_last_lr"] == r_state["lr_scheduler"]["_last_lr"]
    assert train_losses(tmp_path / "straight") == train_losses(tmp_path / "resumed")


def test_unfinished_run_needs_resume(train_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    loop.train_codec(config(out, steps=3))
    with pytest.raises(FileExistsError, match="--resume"):
        loop.train_codec(config(out, steps=6, resume=False))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_checkpoint_is_refused(train_root, tmp_path, damage):
    out = tmp_path / "run"
    loop.train_codec(config(out, steps=3))
    path = out / loop.CHECKPOINT
    data = path.read_bytes()
    path.write_bytes(b"not a checkpoint" * 10 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupted or truncated|not a plain weights file"):
        loop.train_codec(config(out, steps=6))


def test_nan_loss_stops_without_saving(train_root, tmp_path, monkeypatch):
    from icm_lib.checkpoint import load_checkpoint
    from icm_lib.losses import RateDistortionLoss

    forward = RateDistortionLoss.forward
    calls = []

    def nan_at_third_step(self, output, target, mask=None):
        out = forward(self, output, target, mask)
        calls.append(1)
        if len(calls) == 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(RateDistortionLoss, "forward", nan_at_third_step)
    out = tmp_path / "run"
    with pytest.raises(loop.TrainingDiverged, match="loss is nan at step 3"):
        loop.train_codec(config(out, checkpoint_every=1))
    _, meta, _ = load_checkpoint(out / loop.CHECKPOINT)
    assert meta["step"] == 2
    assert not (out / loop.SUMMARY).exists()


def _clean_yolo() -> dict:
    """The task loss's default network, the profile's clean YOLO detector (Eq. 2's f): a real YOLOv5n built
    from ultralytics' yaml (untrained) where notebook 04 leaves the trained one; the loss finds it by itself."""
    from icm_lib.paths import detectors_dir
    from tests.conftest import write_yolo_weights

    write_yolo_weights(detectors_dir("smoke") / "yolo" / "shapes" / "clean" / "weights" / "last.pt")
    return {}


# what a registered loss needs to train here beyond config()'s settings
NEEDS = {"task": _clean_yolo}


@pytest.mark.parametrize("loss", sorted(__import__("icm_lib.losses", fromlist=["CRITERIA"]).CRITERIA))
def test_every_registered_loss_trains_and_its_loss_falls(train_root, tmp_path, loss):
    """A few steps with each loss of the registry on the smoke data: the loss falls, and the run records
    which loss and method made it."""
    from icm_lib.checkpoint import load_checkpoint
    from icm_lib.losses import CRITERIA

    out = tmp_path / loss
    settings = NEEDS.get(loss, dict)()
    summary = loop.train_codec(config(out, loss=loss, steps=20, checkpoint_every=10, decay_at=(), **settings))
    losses = train_losses(out)
    assert len(losses) == 20 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert (summary["loss"], summary["method"]) == (loss, CRITERIA[loss].method)
    _, meta, _ = load_checkpoint(out / loop.CHECKPOINT)
    assert (meta["loss"], meta["method"], meta["lmbda"]) == (loss, CRITERIA[loss].method, settings.get("lmbda", 0.01))


def test_a_loss_that_needs_more_than_a_profile_gives_is_refused_in_one_line(train_root, tmp_path):
    with pytest.raises(UserError, match=r"the task loss's detector weights .*clean/weights/last.pt do not exist"):
        loop.train_codec(config(tmp_path / "task", loss="task"))
    with pytest.raises(ValueError, match=r"loss 'task' takes no layers; its arguments: task_weight, network, "):
        config(tmp_path / "task", loss="task", loss_kwargs={"layers": [4]})
    with pytest.raises(ValueError, match=r"loss 'mse' takes no average; its arguments: none"):
        config(tmp_path / "mse", loss="mse", loss_kwargs={"average": "object"})


def test_resuming_with_other_settings_is_refused(train_root, tmp_path):
    out = tmp_path / "run"
    loop.train_codec(config(out, steps=6, stop_at=3))
    with pytest.raises(ValueError, match=r"trained with other settings \(lmbda 0.01 \(asked 0.02\)\)"):
        loop.train_codec(config(out, steps=6, lmbda=0.02))
    assert loop.train_codec(config(out, steps=9, lr=1e-4))["step"] == 9  # the same codec, extended and re-planned


def test_an_extended_run_follows_its_new_schedule_from_its_checkpoint_or_from_weights_alone(train_root, tmp_path):
    """A finished run asked for more steps is back at the base rate until its new decay point, whether it resumes
    its own checkpoint (Adam's moments kept) or only its weights and step (the zoo's files on another machine)."""
    from icm_lib.checkpoint import load_checkpoint, save_checkpoint

    def lrs(out):
        rows = [json.loads(line) for line in (out / loop.METRICS).read_text().splitlines()]
        return {r["step"]: r["lr"] for r in rows if r["split"] == "train"}

    own = tmp_path / "own"
    loop.train_codec(config(own, steps=4))  # decays at step 2
    assert lrs(own)[4] == pytest.approx(1e-4)
    weights = tmp_path / "weights"
    weights.mkdir()
    model, meta, state = load_checkpoint(own / loop.CHECKPOINT)
    kept = {k: v for k, v in state.items() if k not in ("optimizer", "aux_optimizer", "lr_scheduler")}
    save_checkpoint(weights / loop.CHECKPOINT, model, meta, kept)
    for out in (own, weights):
        loop.train_codec(config(out, steps=12))  # decays at step 6 now
        lr = lrs(out)
        assert [lr[s] for s in (5, 6, 12)] == pytest.approx([1e-3, 1e-4, 1e-4]), out.name


def test_the_roi_codec_trains_with_the_dataset_masks(train_root, tmp_path):
    """The ROI codec (a compared method) is given each crop's mask in training and each image's in validation:
    its Object-MSE loss falls, and an image without objects costs it only the header and the mask."""
    from icm_lib.checkpoint import load_checkpoint

    out = tmp_path / "roi"
    summary = loop.train_codec(
        config(
            out,
            loss="object",
            lmbda=0.05,
            steps=20,
            checkpoint_every=10,
            decay_at=(),
            model="mbt2018-mean-roi",
            model_kwargs={"N": 16, "M": 24},
            empty_val_images=2,
        )
    )
    losses = train_losses(out)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    _, meta, _ = load_checkpoint(out / loop.CHECKPOINT)
    assert meta["method"] == summary["method"] == "ROI, Object-MSE"
    val = summary["val"]
    assert val["bpp"] > 0 and val["empty_images"] > 0
    assert val["empty_bpp"] < 0.02  # header (~47 bytes) and a one-run mask over >= 160x160 pixels
