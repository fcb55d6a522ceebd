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
are not objects and stay out of the mask.

Annotation files may come from anyone, and pycocotools trusts them (a box of
``[0, 0, 1e12, 1e12]`` crashes it). So every image entry is checked (an
integer or string id, a file name, positive integer sizes within
:mod:`icm_lib.limits`, equal to the size of the image file itself, read from
its header), and every region before pycocotools sees it: polygons of at least
three points with an even number of finite coordinates, RLEs of the image's
size whose counts add up to it, boxes of four finite numbers and no negative
side; polygons and boxes reaching beyond the image are clipped to it (one
pixel of margin, so no pixel inside changes). All of it is checked before the
first mask is written: a bad file leaves the output folder as it was.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from icm_lib import limits
from icm_lib.data.layout import DatasetLayout
from icm_lib.errors import UserError
from icm_lib.io import open_image, write_atomic

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
    if (
        not isinstance(coco, dict)
        or not isinstance(coco.get("images"), list)
        or not isinstance(coco.get("annotations", []), list)
    ):
        raise UserError(f"{path}: not a COCO instances file (needs an 'images' list and an 'annotations' list)")
    seen = set()
    for img in coco["images"]:
        if not isinstance(img, dict) or not {"id", "file_name", "height", "width"} <= img.keys():
            raise UserError(f"{path}: image entry {str(img)[:80]} lacks id, file_name, height or width")
        _check_image_entry(img, path)
        if img["id"] in seen:
            raise UserError(f"{path}: image id {img['id']!r} is listed twice")
        seen.add(img["id"])
    coco.setdefault("annotations", [])
    return coco


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_image_entry(img: dict, path: Path) -> None:
    """An image entry's id, file name and size, in place: sizes become ints."""
    if not isinstance(img["id"], (int, str)) or isinstance(img["id"], bool):
        raise UserError(f"{path}: image id {str(img['id'])[:40]} is not an integer or a string")
    if not isinstance(img["file_name"], str) or not Path(img["file_name"]).stem:
        raise UserError(f"{path}: image {img['id']!r} has no usable file_name ({str(img['file_name'])[:40]})")
    for key in ("height", "width"):
        value = img[key]
        if not _is_number(value) or not math.isfinite(value) or value != int(value) or value < 1:
            raise UserError(f"{path}: image {img['file_name']} has {key} {str(value)[:40]}, not a positive integer")
        img[key] = int(value)
    limits.check_image_size(img["height"], img["width"], f"{path}: image {img['file_name']}")


def _annotations_by_image(coco: dict, path: Path) -> dict[int, list[dict]]:
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, (int, str)) or image_id not in by_image:
            raise UserError(
                f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else ann} names unknown image id {image_id}"
            )
        by_image[image_id].append(ann)
    return by_image


def check_images_exist(coco: dict, images_dir: Path) -> None:
    """Raise a one-line :class:`UserError` unless every image of a COCO dict is a file in ``images_dir``."""
    if not Path(images_dir).is_dir():
        raise UserError(f"image folder not found: {images_dir}")
    present = set(os.listdir(images_dir))
    missing = [img["file_name"] for img in coco["images"] if Path(img["file_name"]).name not in present]
    if missing:
        raise UserError(
            f"{len(missing)} image file(s) listed in the annotations are missing from {images_dir}, e.g. {missing[0]}"
        )


def check_image_sizes(coco: dict, images_dir: Path) -> None:
    """Raise a one-line :class:`UserError` unless every image file has the size its entry gives."""
    for img in coco["images"]:
        path = Path(images_dir) / Path(img["file_name"]).name
        with open_image(path) as image:  # the header only
            size = image.size
        if size != (img["width"], img["height"]):
            raise UserError(
                f"image {path} is {size[0]}x{size[1]} pixels but its annotation entry says "
                f"{img['width']}x{img['height']}"
            )


def _clip_polygon(points: list[tuple[float, float]], x_max: float, y_max: float) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of a polygon inside [-1, x_max] x [-1, y_max]."""
    edges = [
        (0, -1.0, 1),
        (0, x_max, -1),
        (1, -1.0, 1),
        (1, y_max, -1),
    ]  # (axis, bound, side): keep side*(p-bound) >= 0
    for axis, bound, side in edges:
        if not points:
            break
        inside = [side * (p[axis] - bound) >= 0 for p in points]
        clipped = []
        for i, p in enumerate(points):
            q, q_in = points[i - 1], inside[i - 1]
            if inside[i] != q_in:
                t = (bound - q[axis]) / (p[axis] - q[axis])
                clipped.append((q[0] + t * (p[0] - q[0]), q[1] + t * (p[1] - q[1])))
            if inside[i]:
                clipped.append(p)
        points = clipped
    return points


def _polygons(seg: list, height: int, width: int) -> list[list[float]]:
    """Checked polygons, clipped to the image when they reach beyond it."""
    out = []
    for poly in seg:
        if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
            raise UserError(f"a polygon is not a list of numbers ({str(poly)[:40]})")
        if len(poly) % 2:
            raise UserError(f"a polygon has an odd number of coordinates ({len(poly)})")
        if len(poly) < 6:
            raise UserError(f"a polygon has {len(poly) // 2} point(s), fewer than 3")
        if not all(math.isfinite(v) for v in poly):
            raise UserError("a polygon has a coordinate that is NaN or infinite")
        xs, ys = poly[0::2], poly[1::2]
        if min(xs) >= -1 and min(ys) >= -1 and max(xs) <= width + 1 and max(ys) <= height + 1:
            out.append(poly)
            continue
        points = _clip_polygon(list(zip(xs, ys)), width + 1.0, height + 1.0)
        if len(points) >= 3:
            out.append([v for p in points for v in p])
    return out


def _rle_string_counts(counts: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``, checked)."""
    runs, pos = [], 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise UserError("a compressed RLE ends in the middle of a number")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise UserError(f"a compressed RLE holds {counts[pos]!r}, outside its alphabet")
            value |= (c & 0x1F) << shift
            more, pos, shift = bool(c & 0x20), pos + 1, shift + 5
            if not more and c & 0x10:
                value -= 1 << shift
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    return runs


def _rle(seg: dict, height: int, width: int) -> dict:
    """A checked RLE of the image's size: its runs are non-negative and cover the image exactly."""
    size, counts = seg.get("size"), seg.get("counts")
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        raise UserError(f"an RLE has no [height, width] size ({str(size)[:40]})")
    if size != [height, width]:
        raise UserError(f"an RLE of {size[1]}x{size[0]} pixels for an image of {width}x{height}")
    if isinstance(counts, str):
        runs = _rle_string_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = counts
    else:
        raise UserError(f"an RLE's counts are neither a list of integers nor a string ({str(counts)[:40]})")
    if any(v < 0 for v in runs):
        raise UserError("an RLE has a negative run length")
    if sum(runs) != height * width:
        raise UserError(f"an RLE's runs cover {sum(runs)} pixels, not the image's {height * width}")
    return {"size": size, "counts": counts}


def _box(bbox, height: int, width: int) -> list[float]:
    """A checked [x, y, w, h] box, clipped to the image (one pixel of margin)."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) and math.isfinite(v) for v in bbox):
        raise UserError(f"a bbox is not four finite numbers ({str(bbox)[:40]})")
    x, y, w, h = bbox
    if w < 0 or h < 0:
        raise UserError(f"a bbox has a negative width or height ({bbox})")
    x0, x1 = (min(max(v, -1.0), width + 1.0) for v in (x, x + w))
    y0, y1 = (min(max(v, -1.0), height + 1.0) for v in (y, y + h))
    return [x0, y0, x1 - x0, y1 - y0]


def _regions(ann: dict, height: int, width: int, from_boxes: bool) -> tuple[list, list, list]:
    """One annotation's checked polygons, RLEs and boxes; a problem is a :class:`UserError` naming it."""
    try:
        seg = ann.get("segmentation")
        if from_boxes or seg is None or seg == []:
            if "bbox" not in ann:
                raise UserError("it has neither a segmentation nor a bbox")
            return [], [], [_box(ann["bbox"], height, width)]
        if isinstance(seg, list):
            return _polygons(seg, height, width), [], []
        if isinstance(seg, dict):
            return [], [_rle(seg, height, width)], []
        raise UserError(f"its segmentation is a {type(seg).__name__}, not polygons or an RLE")
    except UserError as err:
        raise UserError(f"annotation {str(ann.get('id'))[:20]}: {err}") from None


def object_mask(annotations: list[dict], height: int, width: int, from_boxes: bool = False) -> np.ndarray:
    """Union of the regions of ``annotations`` as an ``HxW`` uint8 array of 0 and 1 (Eq. (3)'s m).

    Raises:
        UserError: a region that is malformed or does not fit the image (see the module docstring).
    """
    polygons, rles, boxes = [], [], []
    for ann in annotations:
        if not ann.get("ignore"):
            for found, regions in zip((polygons, rles, boxes), _regions(ann, height, width, from_boxes)):
                found.extend(regions)
    coded = [
        mask_utils.frPyObjects(rle, height, width)
        if isinstance(rle["counts"], list)
        else {"size": rle["size"], "counts": rle["counts"].encode()}
        for rle in rles
    ]
    if polygons:
        coded.extend(mask_utils.frPyObjects(polygons, height, width))
    if boxes:
        coded.extend(mask_utils.frPyObjects(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), height, width))
    if not coded:
        return np.zeros((height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(mask_utils.merge(coded, intersect=0)))


def check_annotations(coco: dict, by_image: dict, path: Path, from_boxes: bool = False) -> None:
    """Check every region of a COCO dict (as :func:`object_mask` will) without rasterising any."""
    for img in coco["images"]:
        for ann in by_image[img["id"]]:
            try:
                if not ann.get("ignore"):
                    _regions(ann, img["height"], img["width"], from_boxes)
            except UserError as err:
                raise UserError(f"{path}: image {img['file_name']}: {err}") from None


def _check_out_dir(coco: dict, images_dir: Path, out_dir: Path) -> Path:
    """Refuse an output folder that is a file or the image folder, and two images with one mask name."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder")
    if out_dir.is_dir() and images_dir.is_dir() and os.path.samefile(out_dir, images_dir):
        raise UserError(f"--out {out_dir} is the image folder: masks would overwrite or mix with the images")
    names: dict[str, str] = {}
    for img in coco["images"]:
        stem = Path(img["file_name"]).stem
        if stem in names:
            raise UserError(f"images {names[stem]} and {img['file_name']} would both write the mask {stem}.png")
        names[stem] = img["file_name"]
    return out_dir


def write_masks(
    annotations_json: Path, images_dir: Path, out_dir: Path, from_boxes: bool = False, verbose: bool = True
) -> dict:
    """Write ``out_dir/<image stem>.png`` (0/255) for every image of a COCO file.

    Args:
        annotations_json: COCO instances file (polygons, RLE, crowd regions).
        images_dir: folder of the images (checked to hold every listed file).
        out_dir: where the masks go (created).
        from_boxes: fill the boxes instead of the segmentations.

    Returns:
        ``{"images", "seconds", "images_per_second", "out_dir"}``.

    Raises:
        UserError: malformed JSON, an unknown image id, a missing image file, an entry whose size
            is not its file's, a malformed region, or an output folder that would destroy
            something; all before the first mask is written.
    """
    start = time.perf_counter()
    coco = load_coco(annotations_json)
    by_image = _annotations_by_image(coco, Path(annotations_json))
    out_dir = _check_out_dir(coco, Path(images_dir), Path(out_dir))
    check_images_exist(coco, images_dir)
    check_image_sizes(coco, images_dir)
    check_annotations(coco, by_image, Path(annotations_json), from_boxes)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the mask folder {out_dir}: {err.strerror or err}") from None
    for img in coco["images"]:
        mask = object_mask(by_image[img["id"]], img["height"], img["width"], from_boxes)
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
    return {
        "annotations": str(Path(annotations_json).resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "from_boxes": from_boxes,
    }


def build_masks(
    layout: DatasetLayout, split: str, from_boxes: bool = False, overwrite: bool = False, verbose: bool = True
) -> dict:
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
            return {
                "images": stamp["images"],
                "seconds": stamp["seconds"],
                "images_per_second": rate,
                "out_dir": out_dir,
                "reused": True,
            }
    stamp_path.unlink(missing_ok=True)
    summary = write_masks(annotations, layout.images(split), out_dir, from_boxes, verbose)
    write_atomic(
        stamp_path,
        json.dumps({"source": source, "images": summary["images"], "seconds": summary["seconds"]}, sort_keys=True),
    )
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
    return {
        "stems": [p.stem for p in files],
        "object_fraction": fractions,
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "empty_images": int((values == 0).sum()),
    }
