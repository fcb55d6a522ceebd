"""YOLO detector plumbing: class -> category mapping, cached training, COCOeval scoring; one real tiny run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from icm_lib.data.formats import write_coco_json, write_yolo_labels, write_yolo_yaml
from icm_lib.evaluate.recognition import yolo as detection
from icm_lib.evaluate.recognition.cocoeval import ground_truth_as_detections
from icm_lib.evaluate.recognition.yolo import (
    YoloConfig,
    _coco_detections,
    category_ids,
    data_fingerprint,
    evaluate_yolo,
    train_yolo,
)

CATEGORIES = [{"id": 7, "name": "star"}, {"id": 1, "name": "disc"}, {"id": 3, "name": "cross"}]


def _dataset(root, n_train=8, n_val=4, size=64):
    """Tiny COCO + YOLO dataset: one bright square per image on noise, three categories with sparse ids."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        images, anns = [], []
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = (rng.random((size, size, 3)) * 80).astype(np.uint8)
            x, y, s = int(rng.integers(4, 24)), int(rng.integers(4, 24)), int(rng.integers(16, 32))
            image[y : y + s, x : x + s] = 230
            Image.fromarray(image).save(root / "images" / split / f"{split}{i}.png")
            images.append({"id": 10 + i, "file_name": f"{split}{i}.png", "width": size, "height": size})
            anns.append(
                {
                    "id": i + 1,
                    "image_id": 10 + i,
                    "category_id": [1, 3, 7][i % 3],
                    "bbox": [x, y, s, s],
                    "area": float(s * s),
                    "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]],
                    "iscrowd": 0,
                }
            )
        write_coco_json(root / "annotations" / f"instances_{split}.json", images, anns, CATEGORIES)
        write_yolo_labels({"images": images, "annotations": anns, "categories": CATEGORIES}, root / "labels" / split)
    return write_yolo_yaml(root, CATEGORIES)


def test_yolo_classes_map_to_sorted_category_ids(tmp_path):
    _dataset(tmp_path)
    cats = category_ids(tmp_path / "annotations" / "instances_val.json")
    assert cats == [1, 3, 7]
    boxes = SimpleNamespace(
        xyxy=torch.tensor([[1.0, 2.0, 11.0, 22.0], [0.0, 0.0, 5.0, 5.0]]),
        conf=torch.tensor([0.9, 0.2]),
        cls=torch.tensor([2.0, 0.0]),
    )
    dets = _coco_detections(SimpleNamespace(boxes=boxes), image_id=12, cats=cats)
    assert dets[0] == {"image_id": 12, "category_id": 7, "bbox": [1.0, 2.0, 10.0, 20.0], "score": pytest.approx(0.9)}
    assert dets[1]["category_id"] == 1


def test_evaluate_scores_the_given_images_only(tmp_path, monkeypatch):
    _dataset(tmp_path)
    gt_json = tmp_path / "annotations" / "instances_val.json"
    truth = ground_truth_as_detections(gt_json)
    monkeypatch.setattr(detection, "predict_coco", lambda weights, images, gt, cfg: truth[:2])
    files = sorted((tmp_path / "images" / "val").glob("*.png"))
    assert evaluate_yolo("w.pt", files[:2], gt_json, YoloConfig())["map"] == pytest.approx(1.0)
    assert evaluate_yolo("w.pt", files, gt_json, YoloConfig())["map"] < 0.75  # two of four objects missed
    with pytest.raises(FileNotFoundError, match="missing"):
        evaluate_yolo("w.pt", [tmp_path / "nope.png"], gt_json, YoloConfig())


def test_finished_training_is_reused_and_changed_config_is_not(tmp_path, monkeypatch):
    data = _dataset(tmp_path)
    run = tmp_path / "run"
    cfg = YoloConfig(epochs=1)
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"weights")
    marker = {
        "config": cfg.__dict__,
        "data": str(data),
        "init": None,
        "data_fingerprint": data_fingerprint(data),
        "init_sha256": None,
    }
    (run / "training.json").write_text(json.dumps(marker))
    assert train_yolo(data, run, cfg) == run / "weights" / "last.pt"

    import ultralytics

    def refuse(*args, **kwargs):
        raise RuntimeError("would train")

    monkeypatch.setattr(ultralytics, "YOLO", refuse)
    with pytest.raises(RuntimeError, match="would train"):
        train_yolo(data, run, YoloConfig(epochs=2))
    image = next(p for p in sorted((tmp_path / "images" / "train").iterdir()) if p.is_file())
    image.write_bytes(image.read_bytes())  # the same name, rewritten (a codec recoded it): not the data trained on
    with pytest.raises(RuntimeError, match="would train"):
        train_yolo(data, run, cfg)


def test_finetune_config_is_short_and_gentle():
    base = YoloConfig(epochs=30, lr0=0.002, warmup_epochs=1.0, close_mosaic=5)
    tuned = base.finetuned(3)
    assert (tuned.epochs, tuned.warmup_epochs, tuned.close_mosaic, tuned.optimizer) == (3, 0.0, 3, "AdamW")
    assert tuned.lr0 == pytest.approx(0.0005) and tuned.imgsz == base.imgsz
    assert base.model_yaml == "yolov5n.yaml"


def test_real_tiny_training_and_finetuning(tmp_path):  # about 10 s: one epoch on 8 images of 64 px
    data = _dataset(tmp_path / "data")
    cfg = YoloConfig(imgsz=64, epochs=1, batch=4, close_mosaic=0)
    weights = train_yolo(data, tmp_path / "detectors" / "clean", cfg)
    assert weights.is_file() and json.loads((weights.parent.parent / "training.json").read_text())["seconds"] > 0
    tuned = train_yolo(data, tmp_path / "detectors" / "tuned", cfg.finetuned(1), init=weights)
    scores = evaluate_yolo(
        tuned, tmp_path / "data" / "images" / "val", tmp_path / "data" / "annotations" / "instances_val.json", cfg
    )
    assert set(scores) == {"map", "map50"} and 0.0 <= scores["map"] <= scores["map50"] <= 1.0
    assert not list(tmp_path.glob("runs")) and not (tmp_path / "data" / "runs").exists()
