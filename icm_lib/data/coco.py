"""COCO2017 in the shared layout (:mod:`icm_lib.data.layout`): the data of the paper.

The paper trains the codec on COCO2017 train and evaluates YOLOv5 and Mask
R-CNN on val2017. ``icm data coco --train-images DIR --val-images DIR
--annotations DIR`` links (never copies) the images and the official
``instances_{train,val}2017.json`` into ``data/<profile>/datasets/coco/`` and
writes the YOLO labels (the 80 category ids 1..90 mapped to classes 0..79 in
id order, crowd regions left out as ultralytics' own converter does) and
``yolo.yaml``. Each image gets its own symlink inside a real ``images/<split>``
folder, because ultralytics resolves a symlinked folder to its target and
would then look for the labels beside the user's images.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from icm_lib.data.formats import write_yolo_labels, write_yolo_yaml
from icm_lib.data.layout import SPLITS, DatasetLayout
from icm_lib.data.masks import check_images_exist, load_coco
from icm_lib.errors import UserError
from icm_lib.io import write_atomic
from icm_lib.paths import dataset_dir

_MARKER = "import.json"  # written last: its presence means the import finished


def find_annotation_file(annotations_dir: Path, split: str) -> Path:
    """``instances_<split>2017.json`` (or ``instances_<split>.json``) inside ``annotations_dir``."""
    for name in (f"instances_{split}2017.json", f"instances_{split}.json"):
        if (Path(annotations_dir) / name).is_file():
            return Path(annotations_dir) / name
    raise UserError(f"no instances_{split}2017.json in {annotations_dir} (COCO2017's annotations/ folder)")


def link_images(coco: dict, source_dir: Path, target_dir: Path) -> None:
    """Symlink every image a COCO dict lists from ``source_dir`` into ``target_dir`` (a real folder)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    source_dir = Path(source_dir).resolve()
    for img in coco["images"]:
        name = Path(img["file_name"]).name
        link = target_dir / name
        if not link.is_symlink():
            os.symlink(source_dir / name, link)


def import_coco_split(root: Path, split: str, images_dir: Path, annotation_file: Path) -> dict:
    """Bring one split into ``root``: image links, the annotation file (linked), YOLO labels."""
    coco = load_coco(annotation_file)
    check_images_exist(coco, images_dir)
    link_images(coco, images_dir, root / "images" / split)
    target = root / "annotations" / f"instances_{split}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    os.symlink(Path(annotation_file).resolve(), target)
    write_yolo_labels(coco, root / "labels" / split)
    return coco


def import_coco(
    train_images: Path, val_images: Path, annotations_dir: Path, profile: str = "paper", name: str = "coco"
) -> DatasetLayout:
    """COCO2017 into ``data/<profile>/datasets/<name>``; returns its layout.

    Raises:
        UserError: a folder or annotation file is missing, or the JSON is malformed or names missing images.
    """
    for label, folder in (("train images", train_images), ("val images", val_images), ("annotations", annotations_dir)):
        if not Path(folder).is_dir():
            raise UserError(f"COCO {label} folder not found: {folder}")
    root = dataset_dir(profile, name)
    tmp = root.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    sources = {"train": Path(train_images), "val": Path(val_images)}
    coco = {}
    for split in SPLITS:
        coco = import_coco_split(tmp, split, sources[split], find_annotation_file(annotations_dir, split))
        print(f"[coco] {split}: {len(coco['images'])} images, {len(coco['annotations'])} annotations", flush=True)
    write_yolo_yaml(tmp, coco["categories"], final_root=root)
    spec = {split: str(sources[split].resolve()) for split in SPLITS}
    write_atomic(tmp / _MARKER, json.dumps({"dataset": "coco2017", "images": spec}, sort_keys=True))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return DatasetLayout(root)


def check_real_dataset(layout: DatasetLayout, command: str) -> DatasetLayout:
    """The layout when a real dataset was imported, else a :class:`UserError` saying how to import it."""
    if not (layout.root / _MARKER).is_file() or not all(layout.annotations(s).is_file() for s in SPLITS):
        raise UserError(f"dataset {layout.name} not found in {layout.root}: import it first with '{command}'")
    return layout
