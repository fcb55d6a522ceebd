"""Object masks (Eq. (3)'s m) against hand-built COCO annotations."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from icm_lib.cli import main
from icm_lib.data.layout import DatasetLayout
from icm_lib.data.masks import build_masks, mask_statistics, object_mask, write_masks
from icm_lib.errors import UserError


def _coco(tmp_path, images, annotations, name="instances.json"):
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for img in images:  # black images of the listed size: their headers are checked against the entries
        Image.new("L", (img["width"], img["height"])).save(folder / img["file_name"])
    path = tmp_path / name
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]})
    )
    return path, folder


def _read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def hand_built(tmp_path):
    """A non-square image with two overlapping polygons, a square one with an RLE crowd region, an empty one."""
    rle = {"size": [8, 8], "counts": [10, 5, 49]}  # column-major: pixels 10..14 = column 1, rows 2..6
    images = [
        {"id": 1, "file_name": "wide.jpg", "height": 10, "width": 14},
        {"id": 7, "file_name": "crowd.png", "height": 8, "width": 8},
        {"id": 9, "file_name": "empty.jpg", "height": 6, "width": 5},
    ]
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [2, 2, 4, 4],
            "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [4, 4, 5, 4],
            "segmentation": [[4, 4, 9, 4, 9, 8, 4, 8]],
        },
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1, "bbox": [1, 2, 1, 5], "segmentation": rle},
    ]
    return _coco(tmp_path, images, anns)


def test_masks_union_of_polygons_rle_crowd_and_empty(hand_built, tmp_path):
    path, images = hand_built
    summary = write_masks(path, images, tmp_path / "masks")
    assert summary["images"] == 3 and summary["images_per_second"] > 0
    wide = _read(tmp_path / "masks" / "wide.png")
    assert wide.shape == (10, 14) and wide.dtype == np.uint8 and set(np.unique(wide)) == {0, 255}
    expected = np.zeros((10, 14), np.uint8)
    expected[2:6, 2:6] = 255  # polygon [2, 6) x [2, 6)
    expected[4:8, 4:9] = 255  # the overlapping one: the union, not a sum
    np.testing.assert_array_equal(wide, expected)
    crowd = _read(tmp_path / "masks" / "crowd.png")
    expected = np.zeros((8, 8), np.uint8)
    expected[2:7, 1] = 255
    np.testing.assert_array_equal(crowd, expected)
    empty = _read(tmp_path / "masks" / "empty.png")
    assert empty.shape == (6, 5) and not empty.any()


def test_masks_agree_with_coco_ann_to_mask(hand_built, tmp_path):
    """Same pixels as pycocotools' reference ``COCO.annToMask`` union."""
    from pycocotools.coco import COCO

    path, images = hand_built
    write_masks(path, images, tmp_path / "masks", verbose=False)
    coco = COCO(str(path))
    for img in coco.dataset["images"]:
        ref = np.zeros((img["height"], img["width"]), np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"], iscrowd=None)):
            ref |= coco.annToMask(ann)
        np.testing.assert_array_equal(_read(tmp_path / "masks" / f"{img['file_name'].split('.')[0]}.png"), ref * 255)


def test_masks_from_boxes_and_box_only_annotations(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "height": 10, "width": 14}]
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [1, 2, 3, 4],
            "segmentation": [[8, 1, 12, 1, 10, 5]],
        },
        {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [9, 6, 2, 2], "segmentation": []},
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "ignore": 1,
            "bbox": [0, 0, 14, 1],
            "segmentation": [],
        },
    ]
    path, folder = _coco(tmp_path, images, anns)
    boxes = object_mask(anns, 10, 14, from_boxes=True)
    expected = np.zeros((10, 14), np.uint8)
    expected[2:6, 1:4] = 1
    expected[6:8, 9:11] = 1  # the ignored region (VisDrone) is not an object
    np.testing.assert_array_equal(boxes, expected)
    default = object_mask(anns, 10, 14)
    assert default[2:6, 1:4].sum() == 0 and default[6:8, 9:11].all() and default[1:5, 8:12].any()


def test_build_masks_reuses_and_statistics(hand_built, tmp_path):
    path, images = hand_built
    layout = DatasetLayout(tmp_path / "ds")
    layout.images("val").parent.mkdir(parents=True)
    images.rename(layout.images("val"))
    layout.annotations("val").parent.mkdir(parents=True)
    path.rename(layout.annotations("val"))
    assert build_masks(layout, "val", verbose=False)["reused"] is False
    again = build_masks(layout, "val", verbose=False)
    assert again["reused"] is True and again["images"] == 3 and again["images_per_second"] > 0
    stats = mask_statistics(layout, "val")
    assert stats["stems"] == ["crowd", "empty", "wide"]
    np.testing.assert_allclose(stats["object_fraction"], [5 / 64, 0.0, (16 + 20 - 4) / 140])
    assert stats["empty_images"] == 1
    data = json.loads(layout.annotations("val").read_text())
    data["annotations"] = data["annotations"][:1]  # other annotations: the masks are rebuilt
    layout.annotations("val").write_text(json.dumps(data))
    assert build_masks(layout, "val", verbose=False)["reused"] is False
    assert not _read(layout.masks("val") / "crowd.png").any()


@pytest.mark.parametrize(
    "problem, message",
    [
        ("malformed", "malformed JSON"),
        ("unknown_id", "unknown image id 42"),
        ("missing_file", "missing from"),
        ("not_coco", "not a COCO instances file"),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, hand_built, problem, message):
    path, images = hand_built
    data = json.loads(path.read_text())
    if problem == "malformed":
        path.write_text(path.read_text()[:-5])
    elif problem == "unknown_id":
        data["annotations"][0]["image_id"] = 42
        path.write_text(json.dumps(data))
    elif problem == "missing_file":
        (images / "crowd.png").unlink()
    else:
        path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(UserError, match=message) as err:
        write_masks(path, images, tmp_path / "masks", verbose=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "masks").exists() or not any((tmp_path / "masks").iterdir())


def test_cli_masks(hand_built, tmp_path, capsys):
    path, images = hand_built
    assert (
        main(
            [
                "masks",
                "--annotations",
                str(path),
                "--images",
                str(images),
                "--out",
                str(tmp_path / "m"),
                "--from",
                "boxes",
            ]
        )
        == 0
    )
    assert "images/s" in capsys.readouterr().out
    crowd = _read(tmp_path / "m" / "crowd.png")
    assert crowd[2:7, 1].all() and crowd.sum() == 5 * 255
    assert (
        main(
            [
                "masks",
                "--annotations",
                str(tmp_path / "nope.json"),
                "--images",
                str(images),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_rle_roundtrip_compressed(tmp_path):
    """Compressed RLE (COCO's crowd format in files written by pycocotools) is decoded too."""
    truth = np.zeros((9, 11), np.uint8, order="F")
    truth[3:7, 2:9] = 1
    rle = mask_utils.encode(truth)
    rle["counts"] = rle["counts"].decode("ascii")
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [2, 3, 7, 4], "segmentation": rle}
    np.testing.assert_array_equal(object_mask([ann], 9, 11), truth)
