"""The embedded datasets, generated deterministically from a seed.

``shapes`` stands in for COCO2017 (instance polygons; the codec trains on it,
detectors and segmenters are judged on it) and ``aerial`` for VisDrone-DET
(boxes only, a second domain). Both are drawn from real photographs shipped in
installed packages (:mod:`icm_lib.data.photos`), see :mod:`icm_lib.data.shapes`
and :mod:`icm_lib.data.aerial`. Deviation from the paper: the paper uses COCO2017
and VisDrone; these miniatures exist so the whole pipeline runs on a 2-core CPU
with no download. The ``paper`` profile uses the real data
(:mod:`icm_lib.data.coco`, :mod:`icm_lib.data.visdrone`).

Every image draws its random numbers from ``(seed, dataset, split, index)``,
so the same seed gives byte-identical files, and images can be drawn in any
order or in parallel. A dataset is built in a temporary folder and renamed
into place, so an interrupted run never leaves a half dataset that looks
complete; a complete one with the same seed and sizes is reused.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from icm_lib.data import aerial, shapes
from icm_lib.data.formats import write_coco_json, write_yolo_labels, write_yolo_yaml
from icm_lib.data.layout import SPLITS, DatasetLayout
from icm_lib.data.photos import GROUND_TEXTURES, SCENE_PHOTOS, load_photo
from icm_lib.io import write_atomic
from icm_lib.paths import dataset_dir

DATASETS = ("shapes", "aerial")
SEED = 2023
# Images per split for each generated profile (``paper`` uses COCO2017 and VisDrone instead).
SIZES = {
    "smoke": {"shapes": {"train": 24, "val": 12}, "aerial": {"train": 16, "val": 8}},
    "demo": {"shapes": {"train": 2000, "val": 200}, "aerial": {"train": 1000, "val": 200}},
}
_RENDER = {"shapes": (shapes.render_shapes, shapes.CATEGORIES), "aerial": (aerial.render_aerial, aerial.CATEGORIES)}
_MARKER = "synth.json"  # written last inside the dataset: its presence means "complete"
_FORMAT = 2  # bump when the generators change, so stale datasets are rebuilt
_PARALLEL_FROM = 100  # splits at least this large are drawn by two processes


def render_image(name: str, seed: int, split: str, index: int) -> tuple[np.ndarray, list[dict]]:
    """Image ``index`` of a split, drawn from its own random stream."""
    render = _RENDER[name][0]
    rng = np.random.default_rng([seed, DATASETS.index(name), SPLITS.index(split), index])
    return render(rng)


def _render_png(job: tuple[str, int, str, int, Path]) -> tuple[int, int, list[dict]]:
    """Draw one image and write it as PNG; returns its height, width and annotations."""
    name, seed, split, index, path = job
    image, anns = render_image(name, seed, split, index)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())
    return image.shape[0], image.shape[1], anns


def _coco_dict(name: str, rendered: list[tuple[int, int, list[dict]]], files: list[str]) -> dict:
    images, annotations = [], []
    for image_id, ((h, w, anns), file_name) in enumerate(zip(rendered, files), start=1):
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for ann in anns:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ann["category"] + 1,
                    "segmentation": ann["segmentation"],
                    "bbox": ann["bbox"],
                    "area": ann["area"],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": c, "supercategory": name} for i, c in enumerate(_RENDER[name][1])]
    return {"images": images, "annotations": annotations, "categories": categories}


def _write_split(name: str, root: Path, split: str, count: int, seed: int, verbose: bool) -> dict:
    """Draw one split into ``root`` (images, COCO JSON, YOLO labels); returns the COCO dict."""
    image_dir = root / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    files = [f"{i:06d}.png" for i in range(count)]
    jobs = [(name, seed, split, i, image_dir / f) for i, f in enumerate(files)]
    progress = functools.partial(
        tqdm, total=count, desc=f"[synth] {name}/{split}", unit="img", disable=not verbose, mininterval=1.0
    )
    if count >= _PARALLEL_FROM:
        for ref in SCENE_PHOTOS + GROUND_TEXTURES:
            load_photo(ref)  # decoded once here, inherited by the forked workers
        with get_context("fork").Pool(2) as pool:
            rendered = list(progress(pool.imap(_render_png, jobs, chunksize=16)))
    else:
        rendered = [_render_png(job) for job in progress(jobs)]
    coco = _coco_dict(name, rendered, files)
    info = {"description": f"embedded '{name}' dataset, generated", "seed": seed, "split": split}
    write_coco_json(
        root / "annotations" / f"instances_{split}.json", coco["images"], coco["annotations"], coco["categories"], info
    )
    write_yolo_labels(coco, root / "labels" / split)
    return coco


def _clear_stale_partials(root: Path) -> None:
    """Remove the temporary folders of interrupted runs (their process is gone)."""
    for folder in root.parent.glob(f".{root.name}.partial-*"):
        pid = int(folder.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


def _is_complete(root: Path, wanted: dict) -> bool:
    marker = root / _MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == wanted
    except (OSError, ValueError):
        return False


def spec(name: str, profile: str, seed: int = SEED, sizes: dict[str, int] | None = None) -> dict:
    """What identifies a generated dataset: name, seed, images per split and generator format.

    It is written to the dataset's ``synth.json`` and fingerprints the data a codec of the
    zoo was trained on (:mod:`icm_lib.zoo`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown embedded dataset {name!r}; expected one of {DATASETS}")
    if sizes is None:
        if profile not in SIZES:
            raise ValueError(
                f"profile {profile!r} has no generated data (the paper profile uses COCO2017 and VisDrone: "
                "see 'icm data coco' and 'icm data visdrone')"
            )
        sizes = SIZES[profile][name]
    return {"dataset": name, "seed": seed, "sizes": dict(sizes), "format": _FORMAT}


def synthesize(
    name: str, profile: str, seed: int = SEED, sizes: dict[str, int] | None = None, verbose: bool = True
) -> DatasetLayout:
    """Generate (or reuse) one embedded dataset of a profile.

    Args:
        name: ``shapes`` or ``aerial``.
        profile: ``smoke`` or ``demo`` (``paper`` uses real data and is refused).
        seed: the dataset's seed; the same seed gives byte-identical files.
        sizes: images per split, default :data:`SIZES` of the profile.

    Returns:
        The dataset's layout under ``data/<profile>/datasets/<name>``.
    """
    wanted = spec(name, profile, seed, sizes)
    sizes = wanted["sizes"]
    root = dataset_dir(profile, name)
    if _is_complete(root, wanted):
        return DatasetLayout(root)
    start = time.perf_counter()
    _clear_stale_partials(root)
    tmp = root.with_name(f".{name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # this process's own earlier, interrupted attempt
    coco = {}
    for split, count in sizes.items():
        coco = _write_split(name, tmp, split, count, seed, verbose)
    write_yolo_yaml(tmp, coco["categories"], splits=tuple(sizes), final_root=root)
    write_atomic(tmp / _MARKER, json.dumps(wanted, sort_keys=True))
    if _is_complete(root, wanted):  # another process finished the same dataset meanwhile
        shutil.rmtree(tmp)
        return DatasetLayout(root)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    if verbose:
        n = sum(sizes.values())
        print(f"[synth] {name} ({profile}): {n} images in {time.perf_counter() - start:.1f} s -> {root}", flush=True)
    return DatasetLayout(root)


def synthesize_profile(
    profile: str, seed: int = SEED, datasets: tuple[str, ...] = DATASETS
) -> dict[str, DatasetLayout]:
    """Generate (or reuse) every embedded dataset of a profile: ``{"shapes": layout, "aerial": layout}``."""
    return {name: synthesize(name, profile, seed) for name in datasets}
