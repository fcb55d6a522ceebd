"""COCOeval wrapper: ground truth fed back scores 1.0; misses, empties and bad ids behave."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from icm_lib.evaluate.recognition.cocoeval import (
    coco_map,
    encode_mask,
    ground_truth_as_detections,
    image_ids_by_stem,
    load_coco,
)


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


@pytest.fixture
def gt() -> dict:
    """Two images, two categories, polygons; a third image without objects."""
    images = [{"id": i, "file_name": f"img{i}.png", "width": 64, "height": 48} for i in (1, 2, 3)]
    # (annotation id, image id, category id, x, y, side)
    boxes = [(1, 1, 1, 4, 4, 20), (2, 1, 2, 30, 10, 16), (3, 2, 1, 8, 8, 24), (4, 2, 2, 40, 20, 12)]
    anns = [
        {
            "id": aid,
            "image_id": img,
            "category_id": cat,
            "bbox": [x, y, s, s],
            "area": float(s * s),
            "segmentation": _square(x, y, s),
            "iscrowd": 0,
        }
        for aid, img, cat, x, y, s in boxes
    ]
    cats = [{"id": 1, "name": "disc"}, {"id": 2, "name": "star"}]
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ground_truth_as_predictions_scores_one(gt, iou_type):
    result = coco_map(gt, ground_truth_as_detections(gt, iou_type), iou_type=iou_type)
    assert result["map"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx(1.0)


def test_json_path_and_mask_encoding_round_trip(gt, tmp_path):
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(gt))
    coco = load_coco(path)
    dets = []
    for ann in gt["annotations"]:
        mask = coco.annToMask(ann)
        dets.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": encode_mask(mask),
                "score": 0.9,
            }
        )
    assert coco_map(path, dets, iou_type="segm")["map"] == pytest.approx(1.0)
    assert image_ids_by_stem(path) == {"img1": 1, "img2": 2, "img3": 3}


def test_missed_and_wrong_class_lower_the_score(gt):
    dets = ground_truth_as_detections(gt)
    dets[0]["category_id"] = 2  # one object given the wrong class, one missed
    result = coco_map(gt, dets[:-1])
    assert 0.0 < result["map"] < 1.0


@pytest.mark.parametrize("max_dets", [100, 300, 500])
def test_detection_cap_other_than_100(gt, max_dets):
    # COCOeval.summarize() reports -1 for AP when the cap is not 100; coco_map must not
    result = coco_map(gt, ground_truth_as_detections(gt), max_dets=max_dets)
    assert result["map"] == pytest.approx(1.0)


def test_shifted_boxes_pass_at_iou_half_only(gt):
    dets = ground_truth_as_detections(gt)
    for det in dets:
        x, y, w, h = det["bbox"]
        det["bbox"] = [x + 0.2 * w, y, w, h]  # IoU = 0.8/1.2 = 0.67
    result = coco_map(gt, dets)
    assert result["map50"] == pytest.approx(1.0)
    assert result["map"] < 0.5


def test_empty_detections_and_empty_ground_truth(gt):
    assert coco_map(gt, []) == {"map": 0.0, "map50": 0.0, "map75": 0.0}
    assert math.isnan(coco_map(gt, [], image_ids=[3])["map"])
    # restricting to image 1 ignores detections on other images
    only_one = coco_map(gt, ground_truth_as_detections(gt), image_ids=[1])
    assert only_one["map"] == pytest.approx(1.0)


def test_bad_input_gives_clear_errors(gt, tmp_path):
    dets = ground_truth_as_detections(gt)
    dets[0]["category_id"] = 99
    with pytest.raises(ValueError, match="category ids \\[99\\]"):
        coco_map(gt, dets)
    with pytest.raises(ValueError, match="iou_type"):
        coco_map(gt, [], iou_type="keypoints")
    with pytest.raises(ValueError, match="segmentation"):
        coco_map(gt, ground_truth_as_detections(gt), iou_type="segm")
    with pytest.raises(FileNotFoundError, match="no COCO annotation file"):
        load_coco(tmp_path / "missing.json")


def test_input_detections_are_not_modified(gt):
    dets = ground_truth_as_detections(gt)
    before = json.dumps(dets, sort_keys=True)
    coco_map(gt, dets)
    assert json.dumps(dets, sort_keys=True) == before
    assert not np.isnan(coco_map(gt, dets)["map75"])
