"""COCO-style accuracy: pycocotools' COCOeval behind one small interface.

The paper scores YOLOv5 (bbox) and Mask R-CNN (bbox and segm) by mAP@[.5:.95]
and mAP50 on COCO2017 val and VisDrone. Every detector here is scored by
pycocotools' COCOeval on COCO-format detections, never by a framework's own
metric, so YOLO and Mask R-CNN numbers are computed the same way.

Detections are COCO result dicts: ``{"image_id", "category_id", "bbox":
[x, y, w, h], "score"}`` and, for ``iou_type="segm"``, a compressed RLE
``"segmentation"``. No detection at all scores 0 rather than failing, and an
evaluation with no ground-truth object scores NaN (COCOeval's -1).

Deviation: ``max_dets`` can raise COCOeval's 100-detection cap; VisDrone's own
toolkit uses 500 because its images hold hundreds of small objects.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

IOU_TYPES = ("bbox", "segm")


def load_coco(gt: str | Path | dict | COCO) -> COCO:
    """A pycocotools ``COCO`` from a JSON path, a loaded dict or an existing ``COCO`` (quietly)."""
    if isinstance(gt, COCO):
        return gt
    if isinstance(gt, (str, Path)):
        path = Path(gt)
        if not path.is_file():
            raise FileNotFoundError(f"no COCO annotation file {path}")
        try:
            gt = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    for ann in coco.dataset.get("annotations", []):
        ann.setdefault("iscrowd", 0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_gt_for_split(layout, split: str = "val") -> COCO:
    """The ground truth of one split of a :class:`~icm_lib.data.layout.DatasetLayout`.

    Decoded images keep their original file stems, so the same ground truth
    scores the original images and every codec's decoded copy.
    """
    return load_coco(layout.annotations(split))


def image_ids_by_stem(gt: str | Path | dict | COCO) -> dict[str, int]:
    """Map image file stem (``file_name`` without folder or suffix) to COCO image id."""
    coco = load_coco(gt)
    return {Path(img["file_name"]).stem: img["id"] for img in coco.dataset["images"]}


def coco_map(
    gt: str | Path | dict | COCO,
    detections: list[dict],
    iou_type: str = "bbox",
    image_ids: Iterable[int] | None = None,
    max_dets: int = 100,
) -> dict[str, float]:
    """mAP@[.5:.95] and mAP50 of ``detections`` against ``gt`` by COCOeval.

    Args:
        gt: ground truth (path to a COCO instances JSON, its dict, or a ``COCO``).
        detections: COCO result dicts (see module docstring); may be empty.
        iou_type: ``"bbox"`` or ``"segm"``.
        image_ids: evaluate only these images (default: all images of ``gt``).
        max_dets: the largest per-image detection cap (COCO: 100).

    Returns:
        ``{"map": AP@[.5:.95], "map50": AP@.5, "map75": AP@.75}``; NaN when no
        ground-truth object lies in the evaluated images, 0 when nothing is detected.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown iou_type {iou_type!r}; expected one of {IOU_TYPES}")
    coco_gt = load_coco(gt)
    ids = sorted(set(image_ids)) if image_ids is not None else sorted(coco_gt.getImgIds())
    n_gt = len(coco_gt.getAnnIds(imgIds=ids, iscrowd=False))
    if n_gt == 0:
        return {"map": math.nan, "map50": math.nan, "map75": math.nan}
    dets = _prepared(detections, iou_type, set(ids))
    if not dets:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0}
    _check_ids(dets, coco_gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = ids
        evaluator.params.maxDets = [1, 10, int(max_dets)]
        evaluator.evaluate()
        evaluator.accumulate()
    return _average_precisions(evaluator)


def _average_precisions(evaluator: COCOeval) -> dict[str, float]:
    """AP@[.5:.95], AP50 and AP75 over all areas at the largest detection cap.

    Read from ``evaluator.eval["precision"]`` rather than ``summarize()``,
    whose AP line hard-codes a cap of 100 detections.
    """
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [iou, recall, class] at area "all", last cap
    ious = evaluator.params.iouThrs

    def mean(p: np.ndarray) -> float:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else math.nan

    return {
        "map": mean(precision),
        "map50": mean(precision[np.isclose(ious, 0.5)]),
        "map75": mean(precision[np.isclose(ious, 0.75)]),
    }


def _prepared(detections: list[dict], iou_type: str, ids: set[int]) -> list[dict]:
    """Copies of the detections on the evaluated images (loadRes edits its input in place)."""
    dets = []
    for det in detections:
        if det["image_id"] not in ids:
            continue
        det = dict(det)
        if iou_type == "segm":
            if "segmentation" not in det:
                raise ValueError("segm evaluation needs a 'segmentation' (RLE) in every detection")
            det.pop("bbox", None)  # so loadRes takes areas from the masks, as COCO does for segm
        dets.append(det)
    return dets


def _check_ids(dets: list[dict], coco_gt: COCO) -> None:
    known = set(coco_gt.getCatIds())
    unknown = {d["category_id"] for d in dets} - known
    if unknown:
        raise ValueError(f"detections use category ids {sorted(unknown)} absent from the ground truth {sorted(known)}")


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of a binary HxW mask, JSON-ready (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def ground_truth_as_detections(gt: str | Path | dict | COCO, iou_type: str = "bbox") -> list[dict]:
    """The ground truth rewritten as detections with score 1 (a sanity check: it scores AP 1.0)."""
    coco = load_coco(gt)
    dets = []
    for ann in coco.dataset.get("annotations", []):
        if ann.get("iscrowd", 0):
            continue
        det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": list(ann["bbox"]), "score": 1.0}
        if iou_type == "segm":
            rle = coco.annToRLE(ann)
            det["segmentation"] = {"size": list(rle["size"]), "counts": _counts_str(rle["counts"])}
        dets.append(det)
    return dets


def _counts_str(counts) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts
