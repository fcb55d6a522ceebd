"""VisDrone2019-DET in the shared layout: the paper's second evaluation domain.

VisDrone-DET annotates each image ``<stem>.jpg`` with ``annotations/<stem>.txt``,
one box per line: ``x,y,w,h,score,category,truncation,occlusion``. Categories
1..10 are pedestrian, people, bicycle, car, van, truck, tricycle,
awning-tricycle, bus, motor; 0 marks *ignored regions* and 11 *others*.

Conversion to COCO JSON follows VisDrone's own DET evaluation toolkit
(``evalDET.m``: ``dropObjectsInIgr`` and the per-class loop over 1..10):

* Ignored regions (category 0, and any box with score 0) are not objects. A
  ground-truth object is kept only when less than half of its box lies in
  ignored regions, as the toolkit decides. Each ignored region is kept as an
  ``iscrowd=1`` box, repeated for every category and flagged ``"ignore": 1``,
  so that COCOeval ignores detections of any class that fall inside it (the
  toolkit drops detections there); masks and YOLO labels leave these out.
* *Others* (11) is not among the evaluated classes: dropped.

Boxes only: ``segmentation`` is empty and masks are filled from boxes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from icm_lib.data.coco import link_images
from icm_lib.data.formats import write_coco_json, write_yolo_labels, write_yolo_yaml
from icm_lib.data.layout import IMAGE_SUFFIXES, SPLITS, DatasetLayout
from icm_lib.errors import UserError
from icm_lib.io import write_atomic
from icm_lib.paths import dataset_dir

CATEGORIES = ("pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor")
IGNORED, OTHERS = 0, 11
_MARKER = "import.json"


def parse_visdrone_txt(path: Path) -> np.ndarray:
    """Rows ``x, y, w, h, score, category, truncation, occlusion`` of one annotation file (int array, N x 8)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = [f for f in line.strip().split(",") if f.strip() != ""]
        if not fields:
            continue
        try:
            values = [int(float(f)) for f in fields]
        except ValueError:
            raise UserError(f"{path}:{number}: not a VisDrone annotation line: {line.strip()[:60]!r}") from None
        if len(values) < 6:
            raise UserError(f"{path}:{number}: expected 8 comma-separated numbers, got {len(values)}")
        rows.append((values + [0, 0])[:8])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 8)


def _ignored_fraction(box: np.ndarray, ignore_map: np.ndarray) -> float:
    x, y, w, h = (int(v) for v in box)
    region = ignore_map[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
    return float(region.sum()) / max(1, w * h)


def image_annotations(rows: np.ndarray, height: int, width: int) -> tuple[list[dict], list[dict]]:
    """Objects and ignored regions of one image, by the toolkit's rules (see the module docstring)."""
    ignored = rows[(rows[:, 5] == IGNORED) | (rows[:, 4] == 0)]
    objects = rows[(rows[:, 5] >= 1) & (rows[:, 5] <= 10) & (rows[:, 4] != 0)]
    ignore_map = np.zeros((height, width), np.uint8)
    for x, y, w, h in ignored[:, :4]:
        ignore_map[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 1
    kept = [r for r in objects if r[2] > 0 and r[3] > 0 and _ignored_fraction(r[:4], ignore_map) < 0.5]
    objs = [
        {
            "category_id": int(r[5]),
            "bbox": [int(v) for v in r[:4]],
            "area": int(r[2] * r[3]),
            "iscrowd": 0,
            "segmentation": [],
            "truncation": int(r[6]),
            "occlusion": int(r[7]),
        }
        for r in kept
    ]
    crowd = [
        {
            "category_id": c,
            "bbox": [int(v) for v in r[:4]],
            "area": int(r[2] * r[3]),
            "iscrowd": 1,
            "ignore": 1,
            "segmentation": [],
        }
        for r in ignored
        if r[2] > 0 and r[3] > 0
        for c in range(1, len(CATEGORIES) + 1)
    ]
    return objs, crowd


def convert_visdrone(images_dir: Path, annotations_dir: Path) -> dict:
    """A VisDrone-DET split (``images/``, ``annotations/``) as a COCO instances dict."""
    files = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images in {images_dir}")
    images, annotations = [], []
    for image_id, path in enumerate(files, start=1):
        txt = Path(annotations_dir) / f"{path.stem}.txt"
        if not txt.is_file():
            raise UserError(f"annotation file missing for {path.name}: {txt}")
        with Image.open(path) as im:  # reads the header only
            width, height = im.size
        images.append({"id": image_id, "file_name": path.name, "height": height, "width": width})
        objs, crowd = image_annotations(parse_visdrone_txt(txt), height, width)
        for ann in objs + crowd:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    categories = [{"id": i + 1, "name": n, "supercategory": "visdrone"} for i, n in enumerate(CATEGORIES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _split_dir(root: Path, split: str) -> Path:
    folder = Path(root) / f"VisDrone2019-DET-{split}"
    if not (folder / "images").is_dir() or not (folder / "annotations").is_dir():
        raise UserError(f"VisDrone split not found: {folder} must hold images/ and annotations/")
    return folder


def import_visdrone(root: Path, profile: str = "paper", name: str = "visdrone") -> DatasetLayout:
    """VisDrone2019-DET (``root/VisDrone2019-DET-{train,val}``) into ``data/<profile>/datasets/<name>``."""
    if not Path(root).is_dir():
        raise UserError(f"VisDrone folder not found: {root}")
    target = dataset_dir(profile, name)
    tmp = target.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    coco = {}
    for split in SPLITS:
        folder = _split_dir(root, split)
        coco = convert_visdrone(folder / "images", folder / "annotations")
        link_images(coco, folder / "images", tmp / "images" / split)
        info = {"description": f"VisDrone2019-DET-{split} converted to COCO (ignored regions as iscrowd boxes)"}
        write_coco_json(
            tmp / "annotations" / f"instances_{split}.json",
            coco["images"],
            coco["annotations"],
            coco["categories"],
            info,
        )
        write_yolo_labels(coco, tmp / "labels" / split)
        print(
            f"[visdrone] {split}: {len(coco['images'])} images, {sum(1 for a in coco['annotations'] if not a['iscrowd'])} objects",
            flush=True,
        )
    write_yolo_yaml(tmp, coco["categories"], final_root=target)
    write_atomic(
        tmp / _MARKER, json.dumps({"dataset": "visdrone2019-det", "root": str(Path(root).resolve())}, sort_keys=True)
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return DatasetLayout(target)
