"""The ``shapes`` scenes: the COCO stand-in of the embedded data.

Each image is a crop of a real photograph (:mod:`icm_lib.data.photos`) on which
0..N objects are pasted. An object is a silhouette of one of eight categories
(circle, triangle, star, cross, heart, crescent, hexagon, arrow), scaled
(small objects included), stretched and rotated, and filled with a patch cut
from another photograph, so only its shape tells its category.

Objects are colourful and scenes nearly grey: the scene photo keeps at most
:attr:`ShapesConfig.background_saturation` of its colour, an object's texture
has its colour boosted. This gives "things" a look of their own against
"stuff", as COCO's objects have, but one a 2-million-parameter codec can pick
up in minutes of CPU training (COCO's objectness is semantic and takes the
paper's full training). Deviation of the miniature: without this cue the demo
codec trained with Object-MSE did not learn where the objects are within its
15-minute budget (object BD-PSNR -1.4 dB against the MSE codec).

Occlusion follows COCO: later objects are drawn over earlier ones and every
annotation is the object's *visible* region (COCO annotates what is seen, not
amodal shape). Placements that would hide more than
:attr:`ShapesConfig.min_visible` of an earlier object are redrawn. Polygons are
traced on a 4x supersampled label map, so they agree with the anti-aliased
pixels to about a quarter of a pixel, and union of the annotations equals the
union of the objects (the mask of Eq. (3)) whatever the occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from icm_lib.data.photos import SCENE_PHOTOS, load_photo, random_crop

CATEGORIES = ("circle", "triangle", "star", "cross", "heart", "crescent", "hexagon", "arrow")
SUPERSAMPLE = 4  # label map resolution factor: polygons and anti-aliasing at 1/4 pixel
_SHIFT = 4  # fractional bits of cv2.fillPoly vertices


@dataclass(frozen=True)
class ShapesConfig:
    sizes: tuple[int, ...] = (160, 192, 224, 256)  # image heights and widths are drawn from these (independently)
    max_objects: int = 8  # objects per image: 1..max_objects (fewer when placements are refused)
    empty_fraction: float = 0.1  # share of images with no object
    scale: tuple[float, float] = (0.1, 0.9)  # object diameter / short image side, drawn log-uniformly
    min_visible: float = 0.4  # an earlier object must keep this share of its area visible
    min_inside: float = 0.6  # share of an object's area that must fall inside the image
    background_saturation: tuple[float, float] = (0.0, 0.35)  # colour kept in the scene photo (0: grey, 1: as shot)
    background_brightness: tuple[float, float] = (0.6, 1.0)  # scene photo dimmed by this factor
    object_saturation: tuple[float, float] = (1.3, 2.0)  # colour of an object's texture, boosted around its grey


def _circle(n: int = 40, r: float = 1.0, cx: float = 0.0, start: float = 0.0, stop: float = 2 * np.pi) -> np.ndarray:
    t = np.linspace(start, stop, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), r * np.sin(t)], 1)


def _silhouette(name: str) -> np.ndarray:
    """Unit polygon (about [-1, 1]^2, y down) of a category."""
    if name == "circle":
        return _circle()
    if name == "triangle":
        return _circle(3, start=-np.pi / 2)
    if name == "hexagon":
        return _circle(6)
    if name == "star":
        pts = _circle(10, start=-np.pi / 2)
        pts[1::2] *= 0.42
        return pts
    if name == "cross":
        a = 0.33
        return np.array(
            [
                [-a, -1],
                [a, -1],
                [a, -a],
                [1, -a],
                [1, a],
                [a, a],
                [a, 1],
                [-a, 1],
                [-a, a],
                [-1, a],
                [-1, -a],
                [-a, -a],
            ],
            float,
        )
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return np.stack([x, -y - 2.5], 1) / 16.5
    if name == "crescent":
        # Disc of radius 1 minus a disc of radius 0.85 centred at (0.5, 0): outer arc, then inner arc back.
        outer = np.stack([np.cos(t := np.linspace(1.015, 2 * np.pi - 1.015, 30)), np.sin(t)], 1)
        s = np.linspace(2 * np.pi - 1.5384, 1.5384, 24)
        inner = np.stack([0.5 + 0.85 * np.cos(s), 0.85 * np.sin(s)], 1)
        return np.concatenate([outer, inner[1:-1]]) + [0.2, 0.0]
    if name == "arrow":
        return np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.62], [1, 0], [0.2, 0.62], [0.2, 0.25], [-1, 0.25]], float)
    raise ValueError(f"unknown shape category {name!r}")


SILHOUETTES = {name: _silhouette(name) for name in CATEGORIES}


def _random_polygon(rng: np.random.Generator, h: int, w: int, cfg: ShapesConfig) -> tuple[int, np.ndarray]:
    """A category index and its polygon in image coordinates (pixel corners at integers)."""
    cat = int(rng.integers(len(CATEGORIES)))
    lo, hi = np.log(cfg.scale[0]), np.log(cfg.scale[1])
    radius = 0.5 * np.exp(rng.uniform(lo, hi)) * min(h, w)
    stretch = rng.uniform(0.75, 1.25)
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = SILHOUETTES[CATEGORIES[cat]] * [radius * stretch, radius / stretch]
    center = rng.uniform([0, 0], [w, h])
    return cat, pts @ rot.T + center


def _fill(label_map: np.ndarray, polygon: np.ndarray, value: int, factor: int) -> None:
    """Fill ``polygon`` (image coordinates) into a label map sampled ``factor`` times per pixel."""
    # Sub-pixel (k) of a map at `factor` has its centre at (k + 0.5) / factor in image coordinates.
    pts = np.round((polygon * factor - 0.5) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(label_map, [pts], value, lineType=cv2.LINE_8, shift=_SHIFT)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _place_objects(rng: np.random.Generator, h: int, w: int, cfg: ShapesConfig) -> list[tuple[int, np.ndarray]]:
    """Draw objects one after another, redrawing any that would hide too much of an earlier one."""
    if rng.random() < cfg.empty_fraction:
        return []
    wanted = int(rng.integers(1, cfg.max_objects + 1))
    placed: list[tuple[int, np.ndarray]] = []
    areas: list[float] = []
    owner = np.zeros((h, w), np.uint8)
    for _ in range(wanted * 4):
        if len(placed) == wanted:
            break
        cat, poly = _random_polygon(rng, h, w, cfg)
        area = _polygon_area(poly)
        trial = owner.copy()
        _fill(trial, poly, len(placed) + 1, 1)
        counts = np.bincount(trial.ravel(), minlength=len(placed) + 2)[1:]
        if counts[-1] < cfg.min_inside * area or counts[-1] < 4:
            continue
        if any(c < cfg.min_visible * a for c, a in zip(counts[:-1], areas)):
            continue
        placed.append((cat, poly))
        areas.append(area)
        owner = trial
    return placed


def _trace(visible: np.ndarray) -> list[list[float]]:
    """COCO polygons (image coordinates) of a supersampled binary region."""
    contours, _ = cv2.findContours(visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.7, True)[:, 0, :]
        if len(contour) >= 3 and cv2.contourArea(contour) >= SUPERSAMPLE:
            polygons.append([round(float(v), 2) for v in ((contour + 0.5) / SUPERSAMPLE).ravel()])
    return polygons


def _annotation(cat: int, visible: np.ndarray, x0: int, y0: int) -> dict | None:
    """COCO fields of one object from its supersampled visible region (whose corner is pixel ``x0, y0``)."""
    polygons = _trace(visible)
    if not polygons:
        return None
    polygons = [[round(v + o, 2) for v, o in zip(p, [x0, y0] * (len(p) // 2))] for p in polygons]
    points = np.concatenate([np.reshape(p, (-1, 2)) for p in polygons])
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    bbox = [x0, y0, x1 - x0, y1 - y0]  # the extent of the segmentation, as COCO's boxes are
    return {
        "category": cat,
        "segmentation": polygons,
        "bbox": [round(float(v), 2) for v in bbox],
        "area": round(float(visible.sum()) / SUPERSAMPLE**2, 2),
    }


def _saturate(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (HxWx3 float) with its colour scaled by ``factor`` around each pixel's grey (0: grey)."""
    grey = image.mean(2, keepdims=True)
    return grey + factor * (image - grey)


def render_shapes(rng: np.random.Generator, cfg: ShapesConfig = ShapesConfig()) -> tuple[np.ndarray, list[dict]]:
    """One scene: ``HxWx3`` uint8 image and its annotations (``category`` index, ``segmentation``, ``bbox``, ``area``)."""
    h, w = (int(v) for v in rng.choice(cfg.sizes, 2))
    background = random_crop(load_photo(SCENE_PHOTOS[rng.integers(len(SCENE_PHOTOS))]), h, w, rng, (0.35, 1.0))
    image = _saturate(background.astype(np.float32), rng.uniform(*cfg.background_saturation)) * rng.uniform(
        *cfg.background_brightness
    )
    objects = _place_objects(rng, h, w, cfg)
    s = SUPERSAMPLE
    owner = np.zeros((h * s, w * s), np.uint8)
    for i, (_, poly) in enumerate(objects):
        _fill(owner, poly, i + 1, s)
    annotations = []
    for i, (cat, poly) in enumerate(objects):
        # Work inside the object's pixel box only: the label map there, the texture cut to its size.
        x0, y0 = (max(0, int(np.floor(v)) - 1) for v in poly.min(0))
        x1, y1 = min(w, int(np.ceil(poly[:, 0].max())) + 1), min(h, int(np.ceil(poly[:, 1].max())) + 1)
        visible = owner[y0 * s : y1 * s, x0 * s : x1 * s] == i + 1
        alpha = cv2.resize(visible.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)[..., None]
        photo = load_photo(SCENE_PHOTOS[rng.integers(len(SCENE_PHOTOS))])
        texture = random_crop(photo, y1 - y0, x1 - x0, rng, (0.1, 0.5)).astype(np.float32)
        texture = texture * rng.uniform(0.7, 1.4, 3).astype(np.float32) + rng.uniform(-30, 30)
        texture = np.clip(_saturate(texture, rng.uniform(*cfg.object_saturation)), 0, 255)
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = region + alpha * (texture - region)
        ann = _annotation(cat, visible, x0, y0)
        if ann is not None:
            annotations.append(ann)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), annotations
