"""The ``aerial`` scenes: the VisDrone stand-in of the embedded data.

A second domain seen from above: ground cut from real texture photographs
(scikit-image's grass, gravel and brick, tinted), crossed by roads, with many
small objects of four VisDrone-like classes (pedestrian, car, van, truck)
that rarely overlap. Annotated with boxes only, like VisDrone-DET: the codec
never trains on it, the detectors do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from icm_lib.data.photos import GROUND_TEXTURES, load_photo, random_crop

CATEGORIES = ("pedestrian", "car", "van", "truck")
# Body length in pixels and width / length per class (pedestrians are discs of that diameter).
_SIZES = {
    "pedestrian": ((3.0, 6.0), 1.0),
    "car": ((9.0, 14.0), 0.5),
    "van": ((12.0, 17.0), 0.48),
    "truck": ((18.0, 28.0), 0.38),
}
_TINTS = ((0.55, 0.75, 0.45), (0.8, 0.78, 0.7), (0.75, 0.55, 0.45), (0.6, 0.62, 0.55))
_SHIFT = 4


@dataclass(frozen=True)
class AerialConfig:
    heights: tuple[int, ...] = (192, 224, 256)  # image height choices
    widths: tuple[int, ...] = (256, 288, 320)  # image width choices
    objects: tuple[int, int] = (8, 40)  # objects attempted per image (uniform, inclusive; overlapping ones are dropped)
    roads: tuple[int, int] = (0, 2)  # road bands per image (uniform, inclusive)


def _ground(rng: np.random.Generator, h: int, w: int, cfg: AerialConfig) -> np.ndarray:
    """Tinted ground texture crossed by a few roads of darker gravel."""
    tex = random_crop(load_photo(GROUND_TEXTURES[rng.integers(len(GROUND_TEXTURES))]), h, w, rng, (0.3, 0.8)).astype(
        np.float32
    )
    image = tex * np.asarray(_TINTS[rng.integers(len(_TINTS))], np.float32)
    for _ in range(int(rng.integers(cfg.roads[0], cfg.roads[1] + 1))):
        road = np.zeros((h, w), np.uint8)
        a, b = rng.uniform(0, 1, 2)
        ends = ((int(a * w), 0), (int(b * w), h - 1)) if rng.random() < 0.5 else ((0, int(a * h)), (w - 1, int(b * h)))
        cv2.line(road, ends[0], ends[1], 1, int(rng.integers(14, 26)))
        asphalt = random_crop(load_photo("skimage:gravel.png"), h, w, rng, (0.2, 0.5)).astype(np.float32) * 0.45
        image = np.where(road[..., None] > 0, asphalt, image)
    return image


def _object_polygon(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    (lo, hi), ratio = _SIZES[name]
    length = rng.uniform(lo, hi)
    if name == "pedestrian":
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * length / 2
    else:
        a, b = length / 2, length * ratio / 2
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
    angle = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T + rng.uniform([2, 2], [w - 2, h - 2])


def _draw(image: np.ndarray, polygon: np.ndarray, colour) -> None:
    pts = np.round((polygon - 0.5) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(image, [pts], colour, lineType=cv2.LINE_AA, shift=_SHIFT)


def render_aerial(rng: np.random.Generator, cfg: AerialConfig = AerialConfig()) -> tuple[np.ndarray, list[dict]]:
    """One scene: ``HxWx3`` uint8 image and box annotations (``category`` index, ``bbox``, ``area``)."""
    h, w = int(rng.choice(cfg.heights)), int(rng.choice(cfg.widths))
    image = np.clip(_ground(rng, h, w, cfg), 0, 255).astype(np.uint8)
    taken = np.zeros((h, w), np.uint8)
    annotations = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        cat = int(rng.choice(len(CATEGORIES), p=[0.35, 0.4, 0.15, 0.1]))
        poly = _object_polygon(rng, CATEGORIES[cat], h, w)
        # Seen from above, objects do not overlap: an object whose box (plus a pixel and its
        # shadow) meets one already drawn is skipped.
        (bx0, by0), (bx1, by1) = np.floor(poly.min(0)).astype(int) - 1, np.ceil(poly.max(0)).astype(int) + 2
        window = (slice(max(0, by0), max(0, by1)), slice(max(0, bx0), max(0, bx1)))
        if taken[window].any():
            continue
        taken[window] = 1
        _draw(image, poly + [1.0, 1.0], (20, 20, 20))  # shadow
        colour = tuple(int(c) for c in rng.integers(30, 250, 3))
        _draw(image, poly, colour)
        if CATEGORIES[cat] != "pedestrian":  # windscreen: a dark band at the front
            p0, p1, p2, p3 = poly
            band = [p0 + 0.62 * (p1 - p0), p0 + 0.8 * (p1 - p0), p3 + 0.8 * (p2 - p3), p3 + 0.62 * (p2 - p3)]
            _draw(image, np.array(band), (35, 40, 50))
        x0, y0 = np.clip(poly.min(0), 0, [w, h])
        x1, y1 = np.clip(poly.max(0), 0, [w, h])
        bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
        annotations.append({"category": cat, "segmentation": [], "bbox": bbox, "area": round(bbox[2] * bbox[3], 2)})
    return image, annotations
