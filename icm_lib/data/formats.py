"""Writers shared by every dataset: COCO instances JSON, YOLO txt labels and the
ultralytics data file, all written atomically (temporary file, then rename).

COCO boxes are ``[x, y, width, height]`` in pixels; YOLO labels are one line
``class x_center y_center width height`` per object, normalised to [0, 1],
with classes numbered 0..K-1 in the order of the sorted COCO category ids
(COCO2017's 80 ids 1..90 become 0..79). Crowd (``iscrowd=1``) annotations are
not objects for the detector and get no YOLO line, as in ultralytics' own
COCO converter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import yaml

from icm_lib.io import write_atomic


def write_coco_json(
    path: Path, images: list[dict], annotations: list[dict], categories: list[dict], info: dict | None = None
) -> None:
    """Write a COCO instances file (``images``, ``annotations``, ``categories``), keys sorted for reproducibility."""
    payload = {"info": info or {}, "images": images, "annotations": annotations, "categories": categories}
    write_atomic(path, json.dumps(payload, sort_keys=True, separators=(",", ":")))


def yolo_class_index(categories: list[dict]) -> dict[int, int]:
    """COCO category id -> YOLO class index (0..K-1 in sorted id order)."""
    return {cat_id: i for i, cat_id in enumerate(sorted(c["id"] for c in categories))}


def yolo_lines(annotations: Iterable[dict], width: int, height: int, class_index: dict[int, int]) -> str:
    """YOLO label text for one image's annotations (crowd regions and empty boxes skipped)."""
    lines = []
    for ann in annotations:
        x, y, w, h = ann["bbox"]
        if ann.get("iscrowd", 0) or w <= 0 or h <= 0:
            continue
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        lines.append(f"{class_index[ann['category_id']]} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}")
    return "".join(line + "\n" for line in lines)


def write_yolo_labels(coco: dict, labels_dir: Path) -> int:
    """Write ``labels_dir/<image stem>.txt`` for every image of a COCO dict (empty file when no object); returns the count."""
    labels_dir = Path(labels_dir)
    labels_dir.mkdir(parents=True, exist_ok=True)
    class_index = yolo_class_index(coco["categories"])
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for img in coco["images"]:
        text = yolo_lines(by_image.get(img["id"], []), img["width"], img["height"], class_index)
        write_atomic(labels_dir / f"{Path(img['file_name']).stem}.txt", text)
    return len(coco["images"])


def write_yolo_yaml(
    root: Path, categories: list[dict], splits: Iterable[str] = ("train", "val"), final_root: Path | None = None
) -> Path:
    """Write the ultralytics data file ``root/yolo.yaml`` (class names in YOLO order).

    Its ``path`` is the absolute ``final_root`` (default ``root``): a dataset built in a
    temporary folder names the folder it is renamed to.
    """
    names = {i: c["name"] for i, c in enumerate(sorted(categories, key=lambda c: c["id"]))}
    data = {"path": str(Path(final_root or root).resolve()), **{s: f"images/{s}" for s in splits}, "names": names}
    path = Path(root) / "yolo.yaml"
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))
    return path
