r"""Object masks, the :math:`m` of Eq. (3) of Shindo et al.:

.. math:: \mathrm{Object\_MSE}(x, \hat x) = \mathrm{MSE}(x \odot m, \hat x \odot m)

``m`` is 1 on every pixel covered by an annotated object of the image (the
union of its instance regions, crowd regions included) and 0 elsewhere. Masks
are written as one PNG per image, ``<image file stem>.png``, of the image's
size, with values 0 and 255.

Regions are rasterised by pycocotools (polygons, uncompressed and compressed
RLE, as ``COCO.annToMask`` does) and merged as run-length encodings before a
single decode per image. Annotations with no segmentation (box-only data such
as VisDrone) fill their box, and ``from_boxes=True`` fills boxes for all.
VisDrone's ignored regions (``"ignore": 1``, see :mod:`icm_lib.data.visdrone`)
are not objects and stay out of the mask. Image sizes come from the JSON: the
images are only checked to exist, never decoded.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from icm_lib.cli import UserError
from icm_lib.data.layout import DatasetLayout
from icm_lib.io import write_atomic

_STAMP = ".masks.json"  # beside the masks: which annotations (size, mtime) and mode built them, and how fast


def load_coco(path: Path) -> dict:
    """Read and check a COCO instances file; every problem is a one-line :class:`UserError`."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise UserError(f"annotation file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) or not isinstance(coco.get("annotations", []), list):
        raise UserError(f"{path}: not a COCO instances file (needs an 'images' list and an 'annotations' list)")
    for img in coco["images"]:
        if not isinstance(img, dict) or not {"id", "file_name", "height", "width"} <= img.keys():
            raise UserError(f"{path}: image entry {str(img)[:80]} lacks id, file_name, height or width")
    coco.setdefault("annotations", [])
    return coco


def _annotations_by_image(coco: dict, path: Path) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if image_id not in by_image:
            raise UserError(f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else ann} names unknown image id {image_id}")
        by_image[image_id].append(ann)
    return by_image


def check_images_exist(coco: dict, images_dir: Path) -> None:
    """Raise a one-line :class:`UserError` unless every image of a COCO dict is a file in ``images_dir``."""
    if not Path(images_dir).is_dir():
        raise UserError(f"image folder not found: {images_dir}")
    present = set(os.listdir(images_dir))
    missing = [img["file_name"] for img in coco["images"] if Path(img["file_name"]).name not in present]
    if missing:
        raise UserError(f"{len(missing)} image file(s) listed in the annotations are missing from {images_dir}, e.g. {missing[0]}")


def object_mask(annotations: list[dict], height: int, width: int, from_boxes: bool = False) -> np.ndarray:
    """Union of the regions of ``annotations`` as an ``HxW`` uint8 array of 0 and 1 (Eq. (3)'s m)."""
    rles, boxes = [], []
    for ann in annotations:
        if ann.get("ignore"):
            continue
        seg = ann.get("segmentation")
        if from_boxes or not seg:
            boxes.append(ann["bbox"])
        elif isinstance(seg, list):
            rles.extend(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg.get("counts"), list):
            rles.append(mask_utils.frPyObjects(seg, height, width))
        else:
            rles.append(seg)
    if boxes:
        rles.extend(mask_utils.frPyObjects(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), height, width))
    if not rles:
        return np.zeros((height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(rles, intersect=0)))


def write_masks(annotations_json: Path, images_dir: Path, out_dir: Path, from_boxes: bool = False, verbose: bool = True) -> dict:
    """Write ``out_dir/<image stem>.png`` (0/255) for every image of a COCO file.

    Args:
        annotations_json: COCO instances file (polygons, RLE, crowd regions).
        images_dir: folder of the images (checked to hold every listed file).
        out_dir: where the masks go (created).
        from_boxes: fill the boxes instead of the segmentations.

    Returns:
        ``{"images", "seconds", "images_per_second", "out_dir"}``.

    Raises:
        UserError: malformed JSON, an unknown image id, or a missing image file.
    """
    start = time.perf_counter()
    coco = load_coco(annotations_json)
    by_image = _annotations_by_image(coco, Path(annotations_json))
    check_images_exist(coco, images_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for img in coco["images"]:
        mask = object_mask(by_image[img["id"]], int(img["height"]), int(img["width"]), from_boxes)
        ok, png = cv2.imencode(".png", mask * np.uint8(255), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for the mask of {img['file_name']}")
        write_atomic(out_dir / f"{Path(img['file_name']).stem}.png", png.tobytes())
    seconds = time.perf_counter() - start
    n = len(coco["images"])
    rate = n / seconds if seconds > 0 else float("inf")
    if verbose:
        print(f"[masks] {n} images in {seconds:.1f} s ({rate:.0f} images/s) -> {out_dir}", flush=True)
    return {"images": n, "seconds": seconds, "images_per_second": rate, "out_dir": out_dir}


def _stamp(annotations_json: Path, from_boxes: bool) -> dict:
    stat = Path(annotations_json).stat()
    return {"annotations": str(Path(annotations_json).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "from_boxes": from_boxes}


def build_masks(layout: DatasetLayout, split: str, from_boxes: bool = False, overwrite: bool = False, verbose: bool = True) -> dict:
    """Masks of one split of a dataset into ``layout.masks(split)``; reused when built from the same annotations.

    Returns:
        :func:`write_masks`' summary and ``"reused"``; a reused split reports the time measured when it was built.
    """
    out_dir, annotations = layout.masks(split), layout.annotations(split)
    stamp_path = out_dir / _STAMP
    source = _stamp(annotations, from_boxes) if annotations.is_file() else None
    if not overwrite and source is not None and stamp_path.is_file():
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if stamp.get("source") == source:
            rate = stamp["images"] / stamp["seconds"] if stamp["seconds"] > 0 else None
            return {"images": stamp["images"], "seconds": stamp["seconds"], "images_per_second": rate, "out_dir": out_dir, "reused": True}
    stamp_path.unlink(missing_ok=True)
    summary = write_masks(annotations, layout.images(split), out_dir, from_boxes, verbose)
    write_atomic(stamp_path, json.dumps({"source": source, "images": summary["images"], "seconds": summary["seconds"]}, sort_keys=True))
    return {**summary, "reused": False}


def mask_statistics(layout: DatasetLayout, split: str) -> dict:
    """Object-area statistics of a split's masks: the fraction of pixels inside the mask, per image.

    Returns:
        ``{"stems": [...], "object_fraction": [...], "mean", "median", "empty_images"}``.
    """
    files = sorted(layout.masks(split).glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no masks in {layout.masks(split)}: build them first (build_masks / icm masks)")
    fractions = []
    for path in files:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise UserError(f"unreadable mask {path}")
        fractions.append(float(np.count_nonzero(mask)) / mask.size)
    values = np.asarray(fractions)
    return {"stems": [p.stem for p in files], "object_fraction": fractions, "mean": float(values.mean()),
            "median": float(np.median(values)), "empty_images": int((values == 0).sum())}
