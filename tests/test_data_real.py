"""COCO2017 and VisDrone-DET brought into the layout, on tiny fixtures written in their formats."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from icm_lib.cli import main
from icm_lib.data.coco import check_real_dataset, import_coco
from icm_lib.data.layout import DatasetLayout
from icm_lib.data.masks import build_masks
from icm_lib.data.visdrone import import_visdrone, parse_visdrone_txt
from icm_lib.errors import UserError


def _image(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


@pytest.fixture
def coco_folders(tmp_path):
    """COCO2017-shaped folders: train2017/, val2017/, annotations/instances_{train,val}2017.json."""
    cats = [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
    ]
    for split in ("train", "val"):
        images = [
            {"id": 139, "file_name": "000000000139.jpg", "height": 30, "width": 40},
            {"id": 285, "file_name": "000000000285.jpg", "height": 20, "width": 20},
        ]
        for img in images:
            _image(tmp_path / f"{split}2017" / img["file_name"], img["height"], img["width"])
        anns = [
            {
                "id": 1,
                "image_id": 139,
                "category_id": 90,
                "iscrowd": 0,
                "area": 40.0,
                "bbox": [10, 5, 8, 5],
                "segmentation": [[10, 5, 18, 5, 18, 10, 10, 10]],
            },
            {
                "id": 2,
                "image_id": 139,
                "category_id": 1,
                "iscrowd": 1,
                "area": 6.0,
                "bbox": [0, 0, 2, 3],
                "segmentation": {"size": [30, 40], "counts": [0, 3, 27, 3, 1167]},
            },
            {
                "id": 3,
                "image_id": 285,
                "category_id": 3,
                "iscrowd": 0,
                "area": 16.0,
                "bbox": [2, 2, 4, 4],
                "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
            },
        ]
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"instances_{split}2017.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    return tmp_path


def test_import_coco(project_root, coco_folders):
    layout = import_coco(coco_folders / "train2017", coco_folders / "val2017", coco_folders / "annotations", "paper")
    assert check_real_dataset(layout, "icm data coco ...") == layout
    link = layout.images("val") / "000000000139.jpg"
    assert link.is_symlink() and link.resolve() == (coco_folders / "val2017" / "000000000139.jpg").resolve()
    assert layout.images("val").is_dir() and not layout.images("val").is_symlink()  # ultralytics resolves folder links
    assert [c["id"] for c in layout.categories("val")] == [1, 3, 90]
    # category 90 -> class 2, crowd region (person) left out of YOLO labels
    label = (layout.labels("val") / "000000000139.txt").read_text().split()
    assert label == ["2", "0.350000", "0.250000", "0.200000", "0.166667"]
    assert (layout.labels("train") / "000000000285.txt").read_text().startswith("1 ")
    data = yaml.safe_load(layout.yolo_yaml.read_text())
    assert data["names"] == {0: "person", 1: "car", 2: "toothbrush"} and data["path"] == str(layout.root.resolve())
    build_masks(layout, "val", verbose=False)
    mask = cv2.imread(str(layout.masks("val") / "000000000139.png"), cv2.IMREAD_GRAYSCALE)
    assert (
        mask.shape == (30, 40) and mask[5:10, 10:18].all() and mask[0:3, 0:2].all()
    )  # the crowd region is in the mask
    assert np.count_nonzero(mask) == 40 + 6


def test_import_coco_errors(project_root, coco_folders):
    with pytest.raises(UserError, match="train images folder not found"):
        import_coco(coco_folders / "nope", coco_folders / "val2017", coco_folders / "annotations")
    (coco_folders / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(UserError, match="no instances_val2017.json"):
        import_coco(coco_folders / "train2017", coco_folders / "val2017", coco_folders / "annotations")
    assert not DatasetLayout.of("paper", "coco").root.exists()
    with pytest.raises(UserError, match="import it first with 'icm data coco"):
        check_real_dataset(DatasetLayout.of("paper", "coco"), "icm data coco ...")


VISDRONE_TXT = """\
22,10,20,10,1,4,0,0
0,0,30,30,0,0,0,0
40,40,12,8,1,1,1,2
2,2,10,10,1,6,0,0
50,5,10,10,1,11,0,0
60,20,6,6,0,4,0,0
"""


@pytest.fixture
def visdrone_root(tmp_path):
    """VisDrone2019-DET-{train,val}/{images,annotations} with one image each."""
    for split in ("train", "val"):
        folder = tmp_path / f"VisDrone2019-DET-{split}"
        _image(folder / "images" / "0000001_00000_d_0000001.jpg", 64, 80)
        (folder / "annotations").mkdir(parents=True)
        (folder / "annotations" / "0000001_00000_d_0000001.txt").write_text(VISDRONE_TXT)
    return tmp_path


def test_import_visdrone_follows_the_toolkit(project_root, visdrone_root):
    layout = import_visdrone(visdrone_root, "paper")
    coco = json.loads(layout.annotations("val").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "0000001_00000_d_0000001.jpg", "height": 64, "width": 80}]
    assert [c["name"] for c in coco["categories"]][:4] == ["pedestrian", "people", "bicycle", "car"]
    objects = [a for a in coco["annotations"] if not a["iscrowd"]]
    # kept: the car half outside the ignored region, the pedestrian; dropped: the truck inside it, "others"
    assert [(a["category_id"], a["bbox"]) for a in objects] == [(4, [22, 10, 20, 10]), (1, [40, 40, 12, 8])]
    crowd = [a for a in coco["annotations"] if a["iscrowd"]]
    assert len(crowd) == 2 * 10 and all(
        a["ignore"] == 1 for a in crowd
    )  # two ignored regions (category 0, score 0), every class
    assert {tuple(a["bbox"]) for a in crowd} == {(0, 0, 30, 30), (60, 20, 6, 6)}
    lines = (layout.labels("val") / "0000001_00000_d_0000001.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["3", "0"]
    assert not layout.has_segmentation("val")
    build_masks(layout, "val", verbose=False)
    mask = cv2.imread(str(layout.masks("val") / "0000001_00000_d_0000001.png"), cv2.IMREAD_GRAYSCALE)
    assert np.count_nonzero(mask) == 20 * 10 + 12 * 8 and mask[0:5, 0:5].sum() == 0


def test_visdrone_bad_inputs(project_root, visdrone_root, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,3\n")
    with pytest.raises(UserError, match="expected 8 comma-separated numbers"):
        parse_visdrone_txt(bad)
    bad.write_text("1,2,a,4,1,1,0,0\n")
    with pytest.raises(UserError, match=r"bad.txt:1: not a VisDrone annotation line"):
        parse_visdrone_txt(bad)
    (visdrone_root / "VisDrone2019-DET-val" / "annotations" / "0000001_00000_d_0000001.txt").unlink()
    assert main(["data", "visdrone", "--root", str(visdrone_root), "--profile", "paper"]) == 2
    assert main(["data", "visdrone", "--root", str(tmp_path / "none"), "--profile", "paper"]) == 2


def test_paper_profile_names_the_import_command(project_root):
    from icm_lib.data.prepare import prepare_datasets

    with pytest.raises(UserError, match="icm data visdrone --root"):
        prepare_datasets("paper", ["visdrone"], seed=0)
    with pytest.raises(UserError, match="not available at profile 'paper'"):
        prepare_datasets("paper", ["shapes"], seed=0)
