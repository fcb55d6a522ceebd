"""Coding a split: decoded images, records from the real file size, reuse, labels link, results files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.coding.codecs import PillowCodec, PillowFormat
from icm_lib.evaluate.coding.sweep import (
    code_split,
    codec_dir,
    coding_sweep,
    mean_record,
    read_family_results,
    select_codecs,
)


def make_layout(profile: str, name: str = "tiny", n: int = 3, size=(40, 56)) -> DatasetLayout:
    """A dataset of ``n`` images with a square object each, its mask and a YOLO label."""
    layout = DatasetLayout.of(profile, name)
    rng = np.random.default_rng(1)
    h, w = size
    for folder in (layout.images("val"), layout.masks("val"), layout.labels("val")):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = np.full((h, w, 3), 90, np.uint8) + rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[8:24, 10 + i : 30 + i] = 255
        image[mask > 0] = (200, 40, 40)
        Image.fromarray(image).save(layout.images("val") / f"im{i}.png")
        Image.fromarray(mask).save(layout.masks("val") / f"im{i}.png")
        (layout.labels("val") / f"im{i}.txt").write_text("0 0.4 0.4 0.3 0.4\n")
    return layout


def test_code_split_records_real_sizes_and_links_labels(project_root):
    layout = make_layout("smoke")
    codec = PillowCodec("jpeg", 30)
    payload = code_split(codec, layout, "val", "smoke")
    out = codec_dir("smoke", "tiny", "jpeg@q30")
    assert sorted(payload["images"]) == ["im0", "im1", "im2"]
    for stem, rec in payload["images"].items():
        image = np.asarray(Image.open(layout.images("val") / f"{stem}.png").convert("RGB"))
        assert rec["bytes"] == len(codec.encode(image))
        assert rec["bpp"] == pytest.approx(8 * rec["bytes"] / (40 * 56))
        decoded = np.asarray(Image.open(out / "images" / "val" / f"{stem}.png"))
        assert np.array_equal(decoded, codec.decode(codec.encode(image)))
        assert rec["object_psnr"] > 15 and rec["background_psnr"] > 15
    on_disk = json.loads((out / "records_val.json").read_text())
    assert on_disk["mean"]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in payload["images"].values()]))
    # ultralytics maps images/val -> labels/val: the link must resolve to the dataset's labels
    assert (out / "labels" / "val" / "im0.txt").read_text() == "0 0.4 0.4 0.3 0.4\n"
    assert not (out / "labels" / "val").resolve().is_relative_to(out)


def test_code_split_reuses_finished_work_and_redoes_interrupted(project_root):
    layout = make_layout("smoke", n=4)
    codec = PillowCodec("webp", 40)
    first = code_split(codec, layout, "val", "smoke", limit=3)
    calls = []
    real_encode = codec.encode
    codec.encode = lambda image: calls.append(1) or real_encode(image)
    assert code_split(codec, layout, "val", "smoke", limit=3) == first and calls == []
    smaller = code_split(codec, layout, "val", "smoke", limit=2)
    assert sorted(smaller["images"]) == ["im0", "im1"] and calls == []
    assert smaller["mean"]["bpp"] == pytest.approx(np.mean([first["images"][s]["bpp"] for s in ("im0", "im1")]))
    assert sorted(code_split(codec, layout, "val", "smoke")["images"]) == ["im0", "im1", "im2", "im3"]
    assert len(calls) == 1  # only the new image was coded
    records = codec_dir("smoke", "tiny", codec.id) / "records_val.json"
    records.unlink()  # as if interrupted before the records were written
    assert code_split(codec, layout, "val", "smoke")["mean"]["n"] == 4 and len(calls) == 5


def test_code_split_redoes_work_of_another_codec_version(project_root):
    layout = make_layout("smoke", n=2)
    first = code_split(PillowCodec("jpeg", 40), layout, "val", "smoke")
    retrained = PillowCodec("jpeg", 40)
    retrained.format = PillowFormat("jpeg", "JPEG", None, (("subsampling", "4:4:4"),))
    again = code_split(retrained, layout, "val", "smoke")
    assert again["fingerprint"] == retrained.fingerprint != first["fingerprint"]
    assert again["mean"]["bytes"] > first["mean"]["bytes"]  # recoded with full-resolution chroma


def test_missing_mask_is_a_clear_error(project_root):
    layout = make_layout("smoke", n=1)
    (layout.masks("val") / "im0.png").unlink()
    with pytest.raises(FileNotFoundError, match="object mask"):
        code_split(PillowCodec("jpeg", 30), layout, "val", "smoke")
    assert not (codec_dir("smoke", "tiny", "jpeg@q30") / "records_val.json").exists()


def test_coding_sweep_writes_compressai_results(project_root):
    make_layout("smoke")
    codecs = [PillowCodec("jpeg", q) for q in (60, 10)] + [PillowCodec("avif", 30)]
    paths = coding_sweep("smoke", "tiny", "val", codecs, skipped=["vvc: not here"])
    assert sorted(paths) == ["avif", "jpeg"]
    results = read_family_results("smoke", "tiny")
    jpeg = results["jpeg"]
    assert jpeg["name"] == "jpeg" and "real bitstream" in jpeg["description"]
    assert jpeg["results"]["codec_id"] == ["jpeg@q10", "jpeg@q60"]  # sorted by bpp
    assert jpeg["results"]["bpp"][0] < jpeg["results"]["bpp"][1]
    assert set(jpeg["results"]) >= {"bpp", "psnr", "object_psnr", "background_psnr"}
    skipped = json.loads((project_root / "data/smoke/results/coding/skipped.json").read_text())
    assert skipped == {"skipped": ["vvc: not here"]}


def test_select_codecs_and_means():
    codecs = [PillowCodec("jpeg", 10), PillowCodec("jpeg", 50), PillowCodec("webp", 10)]
    assert [c.id for c in select_codecs(codecs, ["jpeg@q50", "webp"])] == ["jpeg@q50", "webp@q10"]
    assert len(select_codecs(codecs, ["classical"])) == 3 and select_codecs(codecs, ["learned"]) == []
    means = mean_record({"a": {"bpp": 1.0, "object_psnr": None}, "b": {"bpp": 3.0, "object_psnr": 30.0}})
    assert means == {"n": 2, "bpp": 2.0, "object_psnr": 30.0}


def test_cli_codes_a_dataset_and_names_a_missing_one(project_root, capsys):
    from icm_lib.cli import main

    make_layout("smoke")
    assert main(["code", "--profile", "smoke", "--dataset", "tiny", "--codecs", "jpeg@q10", "webp"]) == 0
    results = read_family_results("smoke", "tiny")
    assert results["jpeg"]["results"]["codec_id"] == ["jpeg@q10"]
    assert len(results["webp"]["results"]["bpp"]) == 2  # the smoke profile's webp qualities
    assert main(["code", "--profile", "smoke", "--dataset", "nowhere"]) == 2
    assert "no dataset 'nowhere'" in capsys.readouterr().err


def test_coding_sweep_in_worker_processes_matches_in_process(project_root):
    make_layout("smoke", n=2)
    codecs = [PillowCodec("jpeg", 30), PillowCodec("heic", 30)]  # heic: its plugin registers in the worker
    coding_sweep("smoke", "tiny", "val", codecs)
    here = read_family_results("smoke", "tiny")
    shutil.rmtree(project_root / "data" / "smoke" / "decoded")
    coding_sweep("smoke", "tiny", "val", codecs, workers=2)
    assert read_family_results("smoke", "tiny") == here


def test_the_coding_stage_codes_the_codecs_that_training_recorded(project_root):
    """Notebook 03 reads what notebook 02 (or icm train) recorded, not whatever lies under codecs/; a
    recorded checkpoint that is gone is a one-line error; without a record, every finished codec is found."""
    from conftest import write_untrained_codecs
    from icm_lib.errors import UserError
    from icm_lib.evaluate.coding.sweep import learned_codecs
    from icm_lib.notebook import record
    from icm_lib.training.sweep import run_dir

    write_untrained_codecs("smoke", {"object": [0.05], "mse": [0.01, 0.002]})
    assert {c.id for c in learned_codecs("smoke")} == {
        "bmshj2018-hyperprior-object@0.05",
        "bmshj2018-hyperprior-mse@0.01",
        "bmshj2018-hyperprior-mse@0.002",
    }
    chosen = [
        run_dir("smoke", "object", "bmshj2018-hyperprior", 0.05),
        run_dir("smoke", "mse", "bmshj2018-hyperprior", 0.01),
    ]
    record("02_train_codecs", "smoke", {"codecs": ["a", "b"], "checkpoints": [p / "checkpoint.pt" for p in chosen]})
    assert [c.id for c in learned_codecs("smoke")] == [
        "bmshj2018-hyperprior-object@0.05",
        "bmshj2018-hyperprior-mse@0.01",
    ]
    (chosen[1] / "checkpoint.pt").unlink()
    with pytest.raises(UserError, match="is gone, though 02_train_codecs's record names it"):
        learned_codecs("smoke")
