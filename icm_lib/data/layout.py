"""The on-disk layout every dataset shares, embedded or real.

``data/<profile>/datasets/<name>/``::

    images/<split>/<stem>.png|jpg       the images (one symlink per file for real data)
    annotations/instances_<split>.json  COCO format: images, annotations, categories
    labels/<split>/<stem>.txt           YOLO format, for ultralytics (it maps images/ -> labels/)
    masks/<split>/<stem>.png            object masks of Eq. (3): 0 background, 255 object
    yolo.yaml                           ultralytics data file (absolute paths)

Splits are ``train`` and ``val``. Real COCO2017 and VisDrone are brought into
this layout by :mod:`icm_lib.data.coco` and :mod:`icm_lib.data.visdrone`, so
every later stage reads one structure.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from icm_lib.paths import dataset_dir

SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset in the shared layout."""

    root: Path

    @classmethod
    def of(cls, profile: str, name: str) -> DatasetLayout:
        return cls(dataset_dir(profile, name))

    @property
    def name(self) -> str:
        return self.root.name

    def images(self, split: str) -> Path:
        return self.root / "images" / _check_split(split)

    def annotations(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{_check_split(split)}.json"

    def labels(self, split: str) -> Path:
        return self.root / "labels" / _check_split(split)

    def masks(self, split: str) -> Path:
        return self.root / "masks" / _check_split(split)

    @property
    def yolo_yaml(self) -> Path:
        return self.root / "yolo.yaml"

    def image_files(self, split: str) -> list[Path]:
        """Image files of a split, sorted by name."""
        folder = self.images(split)
        if not folder.is_dir():
            raise FileNotFoundError(f"no image folder {folder}: build the dataset first (icm data ...)")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def categories(self, split: str = "val") -> list[dict]:
        """COCO categories (``id``, ``name``) of a split's annotations."""
        with open(self.annotations(split), encoding="utf-8") as f:
            return json.load(f)["categories"]

    def fingerprint(self) -> str:
        """SHA-256 identifying the data: of the generator's spec (``synth.json``, as the zoo records it) for
        generated data, else of every image's name and size and the annotation files' bytes (real data).

        What a trained codec, a coded split or a detector was made from: a cached result whose
        data fingerprint differs is not reused.
        """
        marker = self.root / "synth.json"
        if marker.is_file():
            return spec_fingerprint(json.loads(marker.read_text(encoding="utf-8")))
        watched = [p for split in SPLITS for p in (self.images(split), self.annotations(split)) if p.exists()]
        return _real_data_fingerprint(self, tuple((str(p), p.stat().st_mtime_ns) for p in watched))

    def has_segmentation(self, split: str = "val") -> bool:
        """Whether annotations carry instance segmentation (the aerial / VisDrone data has boxes only)."""
        with open(self.annotations(split), encoding="utf-8") as f:
            anns = json.load(f)["annotations"]
        return any(a.get("segmentation") for a in anns)


def spec_fingerprint(spec: dict) -> str:
    """SHA-256 of a generated dataset's identifying spec (:func:`icm_lib.data.synth.spec`)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _real_data_fingerprint(layout: DatasetLayout, stamps: tuple) -> str:
    """Hash of real data's image names and sizes and annotation bytes, computed once per change of ``stamps``
    (the folders' and files' modification times): COCO's are large."""
    digest = hashlib.sha256()
    for split in SPLITS:
        if layout.images(split).is_dir():
            for path in layout.image_files(split):
                digest.update(f"{split}/{path.name}:{path.stat().st_size};".encode())
        if layout.annotations(split).is_file():
            with open(layout.annotations(split), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return split
