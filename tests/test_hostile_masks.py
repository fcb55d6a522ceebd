"""Hostile COCO annotation files for `icm masks`: every entry and region checked before pycocotools sees it.

Each case checks the exit status, the one-line message and that no file was created or changed.
The cases that crashed pycocotools or exhausted memory run in a watched subprocess.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from hostile import assert_error_line, assert_refused, icm, snapshot
from icm_lib.cli import main
from icm_lib.data.masks import object_mask

WIDTH, HEIGHT = 256, 192


def _setup(tmp_path, annotations=(), images=None):
    """``images/p.png`` (256x192) and ``a.json`` listing it (or ``images``) with ``annotations``."""
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "images" / "p.png")
    images = images or [{"id": 1, "file_name": "p.png", "height": HEIGHT, "width": WIDTH}]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, **a} for i, a in enumerate(annotations)]
    (tmp_path / "a.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    )
    return snapshot(tmp_path)


def _masks(tmp_path, capsys, *extra, out="m"):
    status = main(
        [
            "masks",
            "--annotations",
            str(tmp_path / "a.json"),
            "--images",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / out),
            *extra,
        ]
    )
    return status, capsys.readouterr().err


def test_huge_box_is_clipped_instead_of_crashing_pycocotools(tmp_path):
    """[0, 0, 1e12, 1e12] segfaulted inside pycocotools (exit 139); clipped, it fills the image."""
    _setup(
        tmp_path,
        [
            {"bbox": [0, 0, 1e12, 1e12], "segmentation": []},
            {"bbox": [0, 0, 1, 1], "segmentation": [[-1e12, -1e12, 1e12, -1e12, 1e12, 1e12]]},
        ],
    )
    outcome = icm("masks", "--annotations", "a.json", "--images", "images", "--out", "m", cwd=tmp_path)
    assert outcome.killed is None and outcome.returncode == 0, outcome.stderr[-2000:]
    mask = cv2.imread(str(tmp_path / "m" / "p.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (HEIGHT, WIDTH) and mask.min() == 255


def test_huge_image_entry_is_refused_before_allocating(tmp_path):
    """An entry of 100000x100000 pixels exhausted memory."""
    before = _setup(tmp_path, images=[{"id": 1, "file_name": "p.png", "height": 100000, "width": 100000}])
    outcome = icm("masks", "--annotations", "a.json", "--images", "images", "--out", "m", cwd=tmp_path)
    assert_refused(outcome, "image p.png (100000x100000 pixels): a side of 100000 pixels, over the max-side limit")
    assert snapshot(tmp_path) == before


def test_clipping_changes_no_pixel_inside_the_image():
    """A polygon and a box reaching far beyond the image give the masks of their parts inside it."""
    far = [{"id": 1, "bbox": [200, 100, 1e9, 1e9], "segmentation": [[100, 20, 5e8, 20, 100, 5e8]]}]
    near = [{"id": 1, "bbox": [200, 100, 1000, 1000], "segmentation": [[100, 20, 1000, 20, 100, 1000]]}]
    for from_boxes in (False, True):
        reference = mask_utils.decode(
            mask_utils.merge(
                mask_utils.frPyObjects(near[0]["segmentation"], HEIGHT, WIDTH)
                if not from_boxes
                else mask_utils.frPyObjects(np.array([near[0]["bbox"]], float), HEIGHT, WIDTH)
            )
        )
        np.testing.assert_array_equal(object_mask(far, HEIGHT, WIDTH, from_boxes), reference)
        np.testing.assert_array_equal(object_mask(near, HEIGHT, WIDTH, from_boxes), reference)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"height": 50, "width": 50}, "images/p.png is 256x192 pixels but its annotation entry says 50x50"),
        ({"height": -192}, "has height -192, not a positive integer"),
        ({"height": "tall"}, "has height tall, not a positive integer"),
        ({"width": 255.5}, "has width 255.5, not a positive integer"),
        ({"id": [1]}, "image id [1] is not an integer or a string"),
        ({"file_name": 7}, "has no usable file_name"),
    ],
)
def test_bad_image_entries(tmp_path, capsys, entry, message):
    before = _setup(tmp_path, images=[{"id": 1, "file_name": "p.png", "height": HEIGHT, "width": WIDTH, **entry}])
    assert_error_line(*_masks(tmp_path, capsys), message)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "annotation, message",
    [
        ({"segmentation": {"size": [10, 10], "counts": [0, 4, 96]}}, "an RLE of 10x10 pixels for an image of 256x192"),
        ({"segmentation": [[]]}, "a polygon has 0 point(s), fewer than 3"),
        ({"segmentation": [[1, 2]]}, "a polygon has 1 point(s), fewer than 3"),
        ({"segmentation": [[1, 2, 3, 4]]}, "a polygon has 2 point(s), fewer than 3"),
        ({"segmentation": [[0, 0, 10, 0, 10, 10, 5]]}, "a polygon has an odd number of coordinates (7)"),
        ({"segmentation": [[0, 0, 10, 0, "x", 10]]}, "a polygon is not a list of numbers"),
        ({"segmentation": [[0, 0, 10, 0, float("nan"), 10]]}, "a polygon has a coordinate that is NaN or infinite"),
        ({"segmentation": []}, "it has neither a segmentation nor a bbox"),
        ({"segmentation": "abc"}, "its segmentation is a str, not polygons or an RLE"),
        ({"segmentation": {"size": [HEIGHT, WIDTH], "counts": "\u00ff!!"}}, "a compressed RLE holds"),
        ({"segmentation": {"size": [HEIGHT, WIDTH], "counts": "o"}}, "a compressed RLE ends in the middle of a number"),
        (
            {"segmentation": {"size": [HEIGHT, WIDTH], "counts": [5, 7]}},
            "an RLE's runs cover 12 pixels, not the image's 49152",
        ),
        ({"segmentation": {"size": [HEIGHT, WIDTH], "counts": [-5, 49157]}}, "an RLE has a negative run length"),
        ({"segmentation": {"counts": [5]}}, "an RLE has no [height, width] size"),
        ({"bbox": [0, 0, -4, 3], "segmentation": []}, "a bbox has a negative width or height"),
        ({"bbox": [0, 0, "w", 3], "segmentation": []}, "a bbox is not four finite numbers"),
    ],
)
def test_bad_regions(tmp_path, capsys, annotation, message):
    before = _setup(tmp_path, [annotation])
    assert_error_line(*_masks(tmp_path, capsys), f"image p.png: annotation 1: {message}")
    assert snapshot(tmp_path) == before


def test_image_id_of_an_annotation_given_as_a_list(tmp_path, capsys):
    before = _setup(tmp_path, [{"bbox": [0, 0, 2, 2], "segmentation": []}])
    data = json.loads((tmp_path / "a.json").read_text())
    data["annotations"][0]["image_id"] = [1]
    (tmp_path / "a.json").write_text(json.dumps(data))
    before = snapshot(tmp_path)
    assert_error_line(*_masks(tmp_path, capsys), "names unknown image id [1]")
    assert snapshot(tmp_path) == before


def test_nothing_is_written_when_a_later_image_is_bad(tmp_path, capsys):
    """All entries and regions are checked before the first mask is written."""
    Image.new("RGB", (8, 8)).save(tmp_path / "q.png")
    before = _setup(
        tmp_path,
        [
            {"bbox": [0, 0, 2, 2], "segmentation": []},
            {"image_id": 2, "bbox": [0, 0, 2, 2], "segmentation": [[1, 1, 2]]},
        ],
        images=[
            {"id": 1, "file_name": "p.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "q.png", "height": 8, "width": 8},
        ],
    )
    (tmp_path / "q.png").rename(tmp_path / "images" / "q.png")
    before = snapshot(tmp_path)
    assert_error_line(*_masks(tmp_path, capsys), "image q.png: annotation 2: a polygon has an odd number")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "case, message",
    [
        ("out is a file", "is a file, not a folder"),
        ("out is the image folder", "is the image folder"),
        ("two images, one mask name", "would both write the mask p.png"),
        ("image listed twice", "image id 1 is listed twice"),
        ("pixel limit flag", "over the max-pixels limit of 1000 pixels"),
    ],
)
def test_bad_outputs_and_limits(tmp_path, capsys, case, message):
    images = None
    if case == "two images, one mask name":
        images = [
            {"id": 1, "file_name": "p.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "p.jpg", "height": HEIGHT, "width": WIDTH},
        ]
    elif case == "image listed twice":
        images = [{"id": 1, "file_name": "p.png", "height": HEIGHT, "width": WIDTH}] * 2
    _setup(tmp_path, [{"bbox": [0, 0, 2, 2], "segmentation": []}], images=images)
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "images" / "p.jpg")
    (tmp_path / "m").write_text("not a folder")
    before = snapshot(tmp_path)
    out, extra = {
        "out is a file": ("m", []),
        "out is the image folder": ("images", []),
        "pixel limit flag": ("new", ["--max-pixels", "1000"]),
    }.get(case, ("new", []))
    assert_error_line(*_masks(tmp_path, capsys, *extra, out=out), message)
    assert snapshot(tmp_path) == before and not (tmp_path / "new").exists()
