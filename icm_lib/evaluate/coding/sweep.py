"""Coding a dataset with every codec: decoded images, real bpp and region PSNR.

For the evaluation of Shindo et al. ("Image Coding for Machines with Object
Region Learning", Sec. 4), every image of a split is encoded to a real
bitstream and decoded; bpp is ``8 * len(bitstream) / (H * W)``. Quality is
PSNR over the whole image, inside the object mask of Eq. (3) and outside it.
For learned codecs each record also holds the share of the entropy-model bits
spent inside the objects (:mod:`icm_lib.evaluate.coding.bitmaps`), the paper's
Fig. 4 in numbers.

``decoded/<dataset>/<codec id>/``::

    images/<split>/<stem>.png   decoded images (PNG, lossless)
    labels/<split>              relative symlink to the dataset's YOLO labels (ultralytics reads it)
    records_<split>.json        per image and mean: bytes, bpp, psnr, object_psnr, background_psnr

The records file is written last (atomically): images coded before an
interruption are redone, finished ones reused (also by a later call with a
larger or smaller image limit). Results per codec family go to
``results/coding/<dataset>/<family>.json`` in CompressAI's results shape.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from icm_lib.config import CodingStage
from icm_lib.data.layout import DatasetLayout
from icm_lib.errors import UserError
from icm_lib.evaluate.coding.bitmaps import bit_allocation_map
from icm_lib.evaluate.coding.codecs import ImageCodec, LearnedCodec, classical_codecs, codec_identity
from icm_lib.io import write_atomic, write_json
from icm_lib.metrics import region_psnr_uint8
from icm_lib.notebook import read_record
from icm_lib.paths import decoded_dir, project_root, results_dir

STEM = "03_coding_examples"  # the notebook whose profile section holds the sweep's settings
TRAINING_STEM = "02_train_codecs"  # the stage whose record names the codecs to code
MEAN_KEYS = (
    "bytes",
    "bpp",
    "psnr",
    "object_psnr",
    "background_psnr",
    "mse",
    "object_mse",
    "background_mse",
    "encode_s",
    "decode_s",
    "estimated_bpp",
    "object_bit_share",
    "object_area",
)


def codec_dir(profile: str, dataset: str, codec_id: str) -> Path:
    """``decoded/<dataset>/<codec id>/``: one codec's decoded images and records."""
    return decoded_dir(profile) / dataset / codec_id


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (a writable array)."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def read_mask(layout: DatasetLayout, split: str, stem: str) -> np.ndarray:
    """The object mask of one image (HxW, nonzero = object)."""
    path = layout.masks(split) / f"{stem}.png"
    if not path.is_file():
        raise FileNotFoundError(f"no object mask {path}: build the masks first (notebook 01 or icm data masks)")
    with Image.open(path) as im:
        return np.array(im.convert("L"))


def code_image(codec: ImageCodec, image: np.ndarray, object_mask: np.ndarray) -> tuple[np.ndarray, dict]:
    """Encode and decode one image; returns the decoded image and its record (bpp from the real bitstream).

    An ROI codec (``codec.takes_mask``) is given the object mask and codes it (its bytes are in the bpp).
    """
    start = time.perf_counter()
    data = codec.encode(image, object_mask) if codec.takes_mask else codec.encode(image)
    mid = time.perf_counter()
    decoded = codec.decode(data)
    end = time.perf_counter()
    if decoded.shape != image.shape:
        raise RuntimeError(f"{codec.id} decoded shape {decoded.shape} differs from the input {image.shape}")
    h, w = image.shape[:2]
    record = {"bytes": len(data), "bpp": 8.0 * len(data) / (h * w), **region_psnr_uint8(image, decoded, object_mask)}
    record.update(encode_s=mid - start, decode_s=end - mid)
    return decoded, record


def mean_record(records: dict[str, dict]) -> dict[str, float]:
    """Means over images (NaN-skipping, as CompressAI averages per-image PSNR); ``n`` images."""
    means = {"n": len(records)}
    for key in MEAN_KEYS:
        values = [r[key] for r in records.values() if key in r and r[key] is not None]
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            means[key] = float(np.mean(finite))
    return means


def load_records(profile: str, dataset: str, codec_id: str, split: str) -> dict | None:
    """A finished ``records_<split>.json`` or None."""
    path = codec_dir(profile, dataset, codec_id) / f"records_{split}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def code_split(codec: ImageCodec, layout: DatasetLayout, split: str, profile: str, limit: int | None = None) -> dict:
    """Encode and decode every image of a split (the first ``limit`` by name when given).

    Images already coded by the same codec (same :attr:`ImageCodec.fingerprint`) from the same data
    (same :meth:`DatasetLayout.fingerprint`) are reused, so a smaller ``limit`` costs nothing and a
    larger one codes only the new images; records of another codec or other data are coded anew.
    Returns:
        The records payload for the requested images: ``codec``, ``family``, ``setting``, ``dataset``,
        ``split``, ``images`` (per stem: bytes, bpp, psnr, object_psnr, background_psnr, ...), ``mean``.
    """
    files = layout.image_files(split)[:limit]
    if not files:
        raise FileNotFoundError(f"no images in {layout.images(split)}")
    out = codec_dir(profile, layout.name, codec.id)
    image_dir = out / "images" / split
    done = load_records(profile, layout.name, codec.id, split) or {}
    records = {s: r for s, r in done.get("images", {}).items() if (image_dir / f"{s}.png").is_file()}
    data = layout.fingerprint()
    if done.get("fingerprint") != codec.fingerprint or done.get("data_fingerprint") != data:
        records = {}
    todo = [f for f in files if f.stem not in records]
    if todo:
        image_dir.mkdir(parents=True, exist_ok=True)
        _link_labels(layout, split, out)
        for path in tqdm(todo, desc=f"{layout.name}/{split} {codec.id}", unit="img", leave=False):
            decoded, records[path.stem] = code_image(codec, read_rgb(path), read_mask(layout, split, path.stem))
            buffer = io.BytesIO()
            Image.fromarray(decoded).save(buffer, format="PNG", compress_level=1)
            write_atomic(image_dir / f"{path.stem}.png", buffer.getvalue())
        write_json(out / f"records_{split}.json", _payload(codec, layout.name, split, records, data))
    return _payload(codec, layout.name, split, {f.stem: records[f.stem] for f in files}, data)


def _payload(codec: ImageCodec, dataset: str, split: str, records: dict, data: str) -> dict:
    return {
        "codec": codec.id,
        "family": codec.family,
        "setting": codec.setting,
        **codec.identity,
        "fingerprint": codec.fingerprint,
        "data_fingerprint": data,
        "dataset": dataset,
        "split": split,
        "bpp_source": "real bitstream (8 * bytes / pixels, headers included)",
        "images": dict(sorted(records.items())),
        "mean": mean_record(records),
    }


def _link_labels(layout: DatasetLayout, split: str, out: Path) -> None:
    """``<codec dir>/labels/<split>`` -> the dataset's labels, so ultralytics evaluates the decoded folder as is."""
    source, link = layout.labels(split), out / "labels" / split
    if not source.is_dir() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():  # dangling: the dataset moved
        link.unlink()
    link.symlink_to(os.path.relpath(source, link.parent), target_is_directory=True)


def bit_share_split(
    codec: LearnedCodec, layout: DatasetLayout, split: str, profile: str, limit: int | None = None
) -> dict:
    """Share of a learned codec's bits inside the object masks, per image (:mod:`icm_lib.evaluate.coding.bitmaps`).

    Written to ``bits_<split>.json`` beside the records and reused like them.
    Returns:
        ``images`` (per stem: ``estimated_bpp``, ``object_bit_share``, ``object_area``) and their ``mean``.
    """
    files = layout.image_files(split)[:limit]
    path = codec_dir(profile, layout.name, codec.id) / f"bits_{split}.json"
    done = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data = layout.fingerprint()
    same = done.get("fingerprint") == codec.fingerprint and done.get("data_fingerprint") == data
    images = done.get("images", {}) if same else {}
    todo = [f for f in files if f.stem not in images]
    for file in tqdm(
        todo, desc=f"{layout.name}/{split} {codec.id} bit maps", unit="img", leave=False, disable=not todo
    ):
        mask = read_mask(layout, split, file.stem)
        bitmap = bit_allocation_map(codec.model, read_rgb(file), mask)
        images[file.stem] = {
            "estimated_bpp": bitmap.bpp,
            "object_bit_share": bitmap.object_share(mask),
            "object_area": float((mask > 0).mean()),
        }

    def payload(chosen: dict) -> dict:
        return {
            "codec": codec.id,
            "fingerprint": codec.fingerprint,
            "data_fingerprint": data,
            "dataset": layout.name,
            "split": split,
            "bpp_source": "entropy estimate (-log2 likelihoods of y and z)",
            "images": dict(sorted(chosen.items())),
            "mean": mean_record(chosen),
        }

    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, payload(images))
    return payload({f.stem: images[f.stem] for f in files})


# --------------------------------------------------------------------------- sweeps and results


def learned_codecs(profile: str) -> list[LearnedCodec]:
    """The learned codecs of a profile, loaded: those notebook 02 (or ``icm train``) recorded in its record
    (``results/notebooks/02_train_codecs.json``, :data:`TRAINING_STEM`); without that record (checkpoints
    placed by hand), every finished codec under ``codecs/`` (:func:`icm_lib.training.sweep.trained_codecs`).

    Raises:
        UserError: a checkpoint the record names is gone.
    """
    from icm_lib.training.sweep import trained_codecs

    try:
        paths = [project_root() / p for p in read_record(TRAINING_STEM, profile)["checkpoints"]]
    except FileNotFoundError:
        paths = [Path(trained.path) for trained in trained_codecs(profile)]
    codecs = []
    for path in paths:
        path = path / "checkpoint.pt" if path.is_dir() else path
        if not path.is_file():
            raise UserError(
                f"{path} is gone, though {TRAINING_STEM}'s record names it: run notebook 02 (or icm train) again"
            )
        codecs.append(LearnedCodec.from_checkpoint(path))
    return codecs


def select_codecs(codecs: list[ImageCodec], selectors: list[str]) -> list[ImageCodec]:
    """Codecs matching any selector: ``all``, ``classical``, ``learned``, a family or a codec id."""

    def chosen(c: ImageCodec, s: str) -> bool:
        learned = isinstance(c, LearnedCodec)
        return s == "all" or s in (c.family, c.id) or (s == "learned" and learned) or (s == "classical" and not learned)

    return [c for c in codecs if any(chosen(c, s) for s in selectors)]


def all_codecs(
    profile: str, classical: list[str] | None = None, qualities: dict[str, list[int]] | None = None
) -> tuple[list[ImageCodec], list[str]]:
    """The profile's learned codecs followed by the classical anchors.

    Args:
        classical: classical families to sweep (all of :data:`CLASSICAL_FAMILIES` by default).
        qualities: quality (or QP) list per classical family.
    Returns:
        ``(codecs, skipped)``, ``skipped`` naming each classical family whose encoder is missing.
    """
    anchors, skipped = classical_codecs(classical, qualities)
    return [*learned_codecs(profile), *anchors], skipped


def write_family_results(profile: str, dataset: str, split: str, family: str, payloads: list[dict]) -> Path:
    """``results/coding/<dataset>/<family>.json`` in CompressAI's results shape, points sorted by bpp."""
    payloads = sorted(payloads, key=lambda p: p["mean"]["bpp"])
    keys = ["bpp", "psnr", "object_psnr", "background_psnr"]
    if all("object_bit_share" in p["mean"] for p in payloads):
        keys += ["estimated_bpp", "object_bit_share", "object_area"]
    identity = codec_identity(payloads[0])
    results = {
        "codec_id": [p["codec"] for p in payloads],
        "setting": [p["setting"] for p in payloads],
        "lmbda": [codec_identity(p)["lmbda"] for p in payloads],
    }
    results.update({k: [p["mean"].get(k, math.nan) for p in payloads] for k in keys})
    description = (
        f"{family} on {dataset}/{split} ({payloads[0]['mean']['n']} images): bpp from the real bitstream "
        "(8 * bytes / pixels, headers included); PSNR in dB averaged per image over the whole image, "
        "the object mask (object_psnr) and its complement (background_psnr)"
    )
    if "object_bit_share" in keys:
        description += (
            "; object_bit_share: share of the entropy-estimate bits (-log2 likelihoods of y and z, "
            "estimated_bpp) spent inside the object mask, object_area: the mask's share of the pixels"
        )
    path = results_dir(profile) / "coding" / dataset / f"{family}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "name": family,
        "description": description,
        "dataset": dataset,
        "split": split,
        **{k: identity[k] for k in ("method", "model", "loss")},
        "results": results,
    }
    write_json(path, body)
    return path


def write_skipped(profile: str, skipped: list[str]) -> Path:
    """``results/coding/skipped.json``: the codec families that could not run here, and why."""
    path = results_dir(profile) / "coding" / "skipped.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"skipped": list(skipped)})
    return path


def sweep_codec(
    codec: ImageCodec, profile: str, dataset: str, split: str, limit: int | None, bitmap_limit: int | None
) -> dict:
    """One codec of a sweep: :func:`code_split`, plus the bit shares of a learned codec; returns the payload."""
    layout = DatasetLayout.of(profile, dataset)
    payload = code_split(codec, layout, split, profile, limit)
    if isinstance(codec, LearnedCodec) and bitmap_limit != 0:
        bits = bit_share_split(codec, layout, split, profile, bitmap_limit)["mean"]
        shares = {k: bits[k] for k in ("estimated_bpp", "object_bit_share", "object_area") if k in bits}
        payload = {**payload, "mean": {**payload["mean"], **shares}}
    return payload


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def code_codecs(
    codecs: list[ImageCodec],
    profile: str,
    dataset: str,
    split: str,
    limit: int | None = None,
    bitmap_limit: int | None = 0,
    workers: int = 1,
) -> list[dict]:
    """:func:`sweep_codec` for each codec (``bitmap_limit`` 0: no bit shares), ``workers`` codecs at once,
    each in its own single-threaded process (1: here, in turn). Returns the payloads in the order of ``codecs``."""
    args = (profile, dataset, split, limit, bitmap_limit)
    bar = tqdm(total=len(codecs), desc=f"coding {dataset}/{split}", unit="codec")
    payloads = []
    if workers <= 1:
        for codec in codecs:
            payloads.append(sweep_codec(codec, *args))
            bar.update(1)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent's torch thread pools must not be inherited
        with ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), initializer=_single_thread) as pool:
            futures = [pool.submit(sweep_codec, c, *args) for c in codecs]
            for future in futures:
                future.add_done_callback(lambda _: bar.update(1))
            payloads = [f.result() for f in futures]
    bar.close()
    return payloads


def coding_sweep(
    profile: str,
    dataset: str,
    split: str,
    codecs: list[ImageCodec],
    limit: int | None = None,
    skipped: list[str] = (),
    bitmap_limit: int | None = None,
    workers: int = 1,
) -> dict[str, Path]:
    """Code a split with every codec (reusing finished work) and write one results file per family.

    Args:
        limit: code the first ``limit`` images (all when None).
        skipped: messages of the codec families that could not run, written to ``skipped.json``.
        bitmap_limit: measure the share of bits inside objects of learned codecs on the first
            ``bitmap_limit`` images (None: as many as coded; 0: not at all).
        workers: codecs coded at once, each in its own single-threaded process (1: here, in turn).
    Returns:
        ``{family: results path}``. A family's file lists exactly the codecs of this sweep.
    """
    n_bits = limit if bitmap_limit is None else (bitmap_limit if limit is None else min(limit, bitmap_limit))
    payloads = code_codecs(codecs, profile, dataset, split, limit, n_bits, workers)
    by_family: dict[str, list[dict]] = {}
    for codec, payload in zip(codecs, payloads):
        by_family.setdefault(codec.family, []).append(payload)
    write_skipped(profile, skipped)
    return {family: write_family_results(profile, dataset, split, family, p) for family, p in by_family.items()}


def read_family_results(profile: str, dataset: str) -> dict[str, dict]:
    """Every ``results/coding/<dataset>/<family>.json``, by family name."""
    folder = results_dir(profile) / "coding" / dataset
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def coding_record(stage, codecs: list[ImageCodec], skipped: list[str]) -> dict:
    """What notebook 03 and ``icm code`` record of a sweep: the settings coded with (read back by notebook 04) and the codecs."""
    return {
        "config": stage.to_params(),
        "datasets": stage.datasets,
        "split": stage.split,
        "codecs": [c.id for c in codecs],
        "identities": {c.id: c.identity for c in codecs},
        "skipped": skipped,
    }


def code_profile(profile: str, stage: CodingStage, selectors: list[str]) -> dict[str, dict[str, Path]]:
    """What ``icm code`` runs: a :class:`CodingStage`'s sweep over its datasets, recorded as notebook 03 records it.

    Returns:
        ``{dataset: {family: results file}}``.
    Raises:
        UserError: a dataset not built, or no codec matching ``selectors``.
    """
    from icm_lib.notebook import record

    for dataset in stage.datasets:
        if not DatasetLayout.of(profile, dataset).images(stage.split).is_dir():
            raise UserError(f"no dataset {dataset!r} at profile {profile}: build it first (notebook 01)")
    codecs, skipped = all_codecs(profile, stage.classical, stage.qualities)
    chosen = select_codecs(codecs, list(selectors))
    if not chosen:
        raise UserError(f"no codec matches {list(selectors)}; available: {sorted({c.family for c in codecs})}")
    written = {
        dataset: coding_sweep(
            profile,
            dataset,
            stage.split,
            chosen,
            stage.limit or None,
            skipped,
            stage.bitmap_images or None,
            stage.workers,
        )
        for dataset in stage.datasets
    }
    record(STEM, profile, coding_record(stage, chosen, skipped))
    return written
