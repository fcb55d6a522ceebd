"""The embedded datasets: deterministic, COCO/YOLO-consistent, written atomically."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml

from icm_lib.data import synth
from icm_lib.data.layout import SPLITS, DatasetLayout
from icm_lib.data.masks import mask_statistics

TINY = {"train": 4, "val": 3}


def _digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", synth.DATASETS)
def test_same_seed_gives_byte_identical_files(project_root, name):
    layout = synth.synthesize(name, "smoke", seed=5, sizes=TINY, verbose=False)
    first = _digest(layout.root)
    assert sum(k.startswith("images/") for k in first) == 7
    shutil.rmtree(layout.root)
    assert _digest(synth.synthesize(name, "smoke", seed=5, sizes=TINY, verbose=False).root) == first
    other = synth.synthesize(name, "smoke", seed=6, sizes=TINY, verbose=False)
    changed = _digest(other.root)
    assert changed["images/val/000000.png"] != first["images/val/000000.png"]


def test_complete_dataset_is_reused_and_interrupted_one_rebuilt(project_root, monkeypatch):
    layout = synth.synthesize("shapes", "smoke", seed=1, sizes=TINY, verbose=False)
    stamp = (layout.root / "synth.json").stat().st_mtime_ns
    assert synth.synthesize("shapes", "smoke", seed=1, sizes=TINY, verbose=False).root == layout.root
    assert (layout.root / "synth.json").stat().st_mtime_ns == stamp
    shutil.rmtree(layout.root)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "write_yolo_yaml", crash)
    with pytest.raises(KeyboardInterrupt):
        synth.synthesize("shapes", "smoke", seed=1, sizes=TINY, verbose=False)
    assert not layout.root.exists()  # only the hidden partial folder, never a half dataset in place
    stale = layout.root.with_name(".shapes.partial-999999999")  # left by a process that no longer runs
    stale.mkdir()
    monkeypatch.undo()
    monkeypatch.setenv("ICM_ROOT", str(project_root))
    rebuilt = synth.synthesize("shapes", "smoke", seed=1, sizes=TINY, verbose=False)
    assert (rebuilt.root / "synth.json").is_file() and len(rebuilt.image_files("train")) == 4
    assert not stale.exists() and not list(layout.root.parent.glob(".shapes.partial-*"))


def test_paper_profile_is_refused(project_root):
    with pytest.raises(ValueError, match="COCO2017 and VisDrone"):
        synth.synthesize("shapes", "paper")


def test_smoke_datasets_are_consistent(smoke_root, monkeypatch):
    monkeypatch.setenv("ICM_ROOT", str(smoke_root))
    for name, segmented in (("shapes", True), ("aerial", False)):
        layout = DatasetLayout.of("smoke", name)
        assert layout.has_segmentation("val") is segmented
        data = yaml.safe_load(layout.yolo_yaml.read_text())
        assert data["path"] == str(layout.root.resolve()) and len(data["names"]) == len(layout.categories())
        for split in SPLITS:
            coco = json.loads(layout.annotations(split).read_text())
            assert len(coco["images"]) == synth.SIZES["smoke"][name][split] == len(layout.image_files(split))
            sizes = {img["id"]: (img["width"], img["height"]) for img in coco["images"]}
            for ann in coco["annotations"]:
                x, y, w, h = ann["bbox"]
                W, H = sizes[ann["image_id"]]
                assert 0 <= x and 0 <= y and x + w <= W + 1e-6 and y + h <= H + 1e-6 and ann["area"] > 0
            lines = sum(len(p.read_text().splitlines()) for p in layout.labels(split).glob("*.txt"))
            assert lines == len(coco["annotations"])
            assert len(list(layout.masks(split).glob("*.png"))) == len(coco["images"])
        stats = mask_statistics(layout, "train")
        assert 0.005 < stats["mean"] < 0.6
    shapes = DatasetLayout.of("smoke", "shapes")
    widths = {(i["width"], i["height"]) for i in json.loads(shapes.annotations("train").read_text())["images"]}
    assert any(w != h for w, h in widths)  # not all square
    assert mask_statistics(shapes, "train")["empty_images"] + mask_statistics(shapes, "val")["empty_images"] >= 1


def test_shapes_annotations_match_painted_objects(monkeypatch):
    """Masks rasterised from the traced polygons agree with the pixels the objects were painted on."""
    from icm_lib.data import shapes
    from icm_lib.data.masks import object_mask

    calls = []

    def flat_crop(photo, height, width, rng, scale=(1.0, 1.0)):
        calls.append(None)  # first call: the background (black); later: object textures (white)
        return np.full((height, width, 3), 0 if len(calls) == 1 else 255, np.uint8)

    monkeypatch.setattr(shapes, "random_crop", flat_crop)
    for seed in range(6):
        calls.clear()
        image, anns = shapes.render_shapes(np.random.default_rng(seed), shapes.ShapesConfig(empty_fraction=0.0))
        painted = image[..., 0] > 100  # texture >= 148 after the colour jitter: alpha above about 2/3
        mask = object_mask(anns, *image.shape[:2]).astype(bool)
        assert anns and (painted & mask).sum() / (painted | mask).sum() > 0.9
        for ann in anns:  # COCO's bbox is the extent of the (visible) segmentation
            points = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
            np.testing.assert_allclose(ann["bbox"][:2], points.min(0), atol=0.011)
            np.testing.assert_allclose(np.add(ann["bbox"][:2], ann["bbox"][2:]), points.max(0), atol=0.011)


def test_cli_synth_builds_datasets_and_masks(project_root, capsys):
    from icm_lib.cli import main

    assert main(["data", "synth", "--profile", "smoke"]) == 0
    for name in synth.DATASETS:
        layout = DatasetLayout.of("smoke", name)
        assert len(list(layout.masks("val").glob("*.png"))) == synth.SIZES["smoke"][name]["val"]
    assert "[synth] shapes (smoke)" in capsys.readouterr().out


def test_parallel_and_serial_drawing_give_the_same_files(project_root, monkeypatch):
    sizes = {"val": 40}
    monkeypatch.setattr(synth, "_PARALLEL_FROM", 10)
    parallel = _digest(synth.synthesize("shapes", "smoke", seed=3, sizes=sizes, verbose=False).root)
    shutil.rmtree(DatasetLayout.of("smoke", "shapes").root)
    monkeypatch.setattr(synth, "_PARALLEL_FROM", 10**9)
    assert _digest(synth.synthesize("shapes", "smoke", seed=3, sizes=sizes, verbose=False).root) == parallel


def test_shapes_objects_are_colourful_on_grey_scenes():
    """The miniature's objectness cue: objects carry colour, the scene behind them hardly any."""
    from icm_lib.data import shapes
    from icm_lib.data.masks import object_mask

    inside, outside = [], []
    for seed in range(8):
        image, anns = shapes.render_shapes(np.random.default_rng(seed), shapes.ShapesConfig(empty_fraction=0.0))
        mask = object_mask(anns, *image.shape[:2]).astype(bool)
        chroma = image.max(2).astype(float) - image.min(2)  # 0 for grey pixels
        inside.append(chroma[mask].mean())
        outside.append(chroma[~mask].mean())
    assert np.mean(inside) > 3 * np.mean(outside)


def test_photos_can_come_from_copies(tmp_path, monkeypatch):
    """A machine without scikit-image or ultralytics generates the same data from copies of the photos."""
    from icm_lib.data.photos import GROUND_TEXTURES, SCENE_PHOTOS, copy_photos, photo_path

    copies = copy_photos(tmp_path / "photos")
    assert len(copies) == len(SCENE_PHOTOS + GROUND_TEXTURES)
    original = photo_path("ultralytics:bus.jpg")
    monkeypatch.setenv("ICM_PHOTOS", str(tmp_path / "photos"))
    copy = photo_path("ultralytics:bus.jpg")
    assert copy == tmp_path / "photos" / "ultralytics" / "bus.jpg" and copy.read_bytes() == original.read_bytes()
