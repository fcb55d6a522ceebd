"""Real photographs shipped inside installed packages, the raw material of the
embedded datasets: scikit-image's ``skimage/data`` photos, matplotlib's
``grace_hopper.jpg`` and ultralytics' ``bus.jpg`` / ``zidane.jpg``.

Backgrounds and object textures are cut from these, so the generated images
carry the statistics of real photographs (edges, noise, texture) that a
learned codec and a detector meet in COCO, without downloading anything.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

# Scene-like colour photos: backgrounds of the `shapes` data and object textures.
SCENE_PHOTOS = (
    "skimage:astronaut.png",
    "skimage:coffee.png",
    "skimage:chelsea.png",
    "skimage:rocket.jpg",
    "skimage:motorcycle_left.png",
    "skimage:hubble_deep_field.jpg",
    "skimage:color.png",
    "matplotlib:grace_hopper.jpg",
    "ultralytics:bus.jpg",
    "ultralytics:zidane.jpg",
)
# Grey top-down textures: ground of the `aerial` data (tinted when used).
GROUND_TEXTURES = ("skimage:grass.png", "skimage:gravel.png", "skimage:brick.png")
_FOLDERS = {"skimage": "data", "matplotlib": "mpl-data/sample_data", "ultralytics": "assets"}


def photo_path(ref: str) -> Path:
    """File of a ``package:file`` reference: ``$ICM_PHOTOS/<package>/<file>`` when that exists (a machine
    without the package, e.g. a bare GPU machine given copies), else the file inside the installed package."""
    package, name = ref.split(":", 1)
    if package not in _FOLDERS:
        raise ValueError(f"unknown photo package {package!r}")
    copies = os.environ.get("ICM_PHOTOS")
    if copies and (Path(copies) / package / name).is_file():
        return Path(copies) / package / name
    # find_spec locates the package without importing it (ultralytics takes seconds to import).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"photo {ref}: package {package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / _FOLDERS[package] / name


@functools.cache
def load_photo(ref: str) -> np.ndarray:
    """A photo as a read-only ``HxWx3`` uint8 array (grey photos repeated over 3 channels)."""
    path = photo_path(ref)
    if not path.is_file():
        raise FileNotFoundError(f"photo {ref} not found at {path}: is the package installed?")
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    array.setflags(write=False)
    return array


def random_crop(
    photo: np.ndarray, height: int, width: int, rng: np.random.Generator, scale: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """A ``height x width`` crop of ``photo`` taken at a random zoom in ``scale`` (fraction of the photo's short side)."""
    import cv2

    ph, pw = photo.shape[:2]
    zoom = rng.uniform(*scale)
    # Size of the source window, as large as the zoom allows but never bigger than the photo.
    side = max(1.0, zoom * min(ph, pw))
    src_h = int(min(ph, max(2, side * height / max(height, width))))
    src_w = int(min(pw, max(2, side * width / max(height, width))))
    y = int(rng.integers(0, ph - src_h + 1))
    x = int(rng.integers(0, pw - src_w + 1))
    window = np.ascontiguousarray(photo[y : y + src_h, x : x + src_w])
    interp = cv2.INTER_AREA if src_h >= height else cv2.INTER_LINEAR
    return cv2.resize(window, (width, height), interpolation=interp)


def copy_photos(out_dir) -> list[Path]:
    """Copy every photo the generators use to ``out_dir/<package>/<file>`` (for ``ICM_PHOTOS``); returns the copies."""
    copies = []
    for ref in SCENE_PHOTOS + GROUND_TEXTURES:
        package, name = ref.split(":", 1)
        target = Path(out_dir) / package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo_path(ref), target)
        copies.append(target)
    return copies
