"""Instance-segmentation samples for torchvision's Mask R-CNN, read from the shared layout.

The paper scores Mask R-CNN on COCO2017 images coded by each codec, and
fine-tunes it on the coded train split. One dataset class serves both: it
reads the ground truth of ``annotations/instances_<split>.json`` (polygon or
RLE segmentation, decoded by pycocotools' ``annToMask``) and the pixels either
from ``images/<split>`` or, with ``images_dir``, from a codec's decoded copy
``decoded/<dataset>/<codec id>/images/<split>/<same stem>.png``.

Labels are the COCO category ids themselves (as torchvision's COCO models do:
91 outputs for COCO's ids 1..90), so a checkpoint's outputs need no mapping
back. Crowd regions are left out of training targets; images with no object
give empty targets, which torchvision accepts as pure background.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from icm_lib.data.layout import IMAGE_SUFFIXES, DatasetLayout
from icm_lib.evaluate.recognition.cocoeval import load_coco

# Boxes thinner than this (pixels) are dropped: torchvision rejects zero-size boxes.
MIN_BOX_SIDE = 1.0


def find_image(folder: Path, file_name: str) -> Path:
    """The image for an annotation ``file_name`` in ``folder``: the same name, else the same stem.

    Decoded copies keep the stem but are PNG whatever the original suffix was.
    """
    exact = folder / Path(file_name).name
    if exact.is_file():
        return exact
    stem = Path(file_name).stem
    for suffix in (".png", *IMAGE_SUFFIXES):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no image for {file_name!r} in {folder}")


class CocoSegmentationDataset(torch.utils.data.Dataset):
    """``(image float[3,H,W] in [0,1], target)`` pairs for torchvision detection models.

    ``target`` holds ``boxes`` (float[N,4], x1 y1 x2 y2 in pixels), ``labels``
    (int64[N], COCO category ids), ``masks`` (uint8[N,H,W]) and ``image_id``.

    Args:
        layout: the dataset (its annotations are the ground truth).
        split: ``"train"`` or ``"val"``.
        images_dir: read pixels from here instead of ``layout.images(split)``
            (a codec's decoded images, same stems).
        max_images: keep only the first this many images (sorted by id); None keeps all.
        hflip: flip each sample horizontally with probability 1/2 (training augmentation).
    """

    def __init__(
        self,
        layout: DatasetLayout,
        split: str,
        images_dir: str | Path | None = None,
        max_images: int | None = None,
        hflip: bool = False,
    ):
        self.coco = load_coco(layout.annotations(split))
        self.images_dir = Path(images_dir) if images_dir is not None else layout.images(split)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"no image folder {self.images_dir}")
        ids = sorted(self.coco.getImgIds())
        self.image_ids = ids[:max_images] if max_images is not None else ids
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def category_ids(self) -> list[int]:
        return sorted(self.coco.getCatIds())

    def image_path(self, index: int) -> Path:
        info = self.coco.loadImgs(self.image_ids[index])[0]
        return find_image(self.images_dir, info["file_name"])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_id = self.image_ids[index]
        info = self.coco.loadImgs(image_id)[0]
        path = find_image(self.images_dir, info["file_name"])
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        height, width = pixels.shape[:2]
        if (height, width) != (info["height"], info["width"]):
            raise ValueError(
                f"{path}: size {width}x{height} differs from the annotation's {info['width']}x{info['height']}"
            )
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)
        target = self.target(image_id, height, width)
        if self.hflip and random.random() < 0.5:
            image, target = _flip(image, target)
        return image, target

    def target(self, image_id: int, height: int, width: int) -> dict[str, torch.Tensor]:
        """Non-crowd objects of one image as Mask R-CNN targets."""
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, iscrowd=False))
        boxes, labels, masks = [], [], []
        for ann in anns:
            x, y, w, h = ann["bbox"]
            if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(ann["category_id"])
            masks.append(self.coco.annToMask(ann) if ann.get("segmentation") else _box_mask(ann["bbox"], height, width))
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, height, width), dtype=torch.uint8),
            "image_id": torch.tensor(image_id),
        }


def _box_mask(bbox: list[float], height: int, width: int) -> np.ndarray:
    """A filled box, for box-only annotations (VisDrone): Mask R-CNN needs some mask per object."""
    mask = np.zeros((height, width), dtype=np.uint8)
    x, y, w, h = bbox
    mask[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = 1
    return mask


def _flip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}


def collate(batch: list) -> tuple[list, list]:
    """Lists of images and targets: torchvision's detection models take images of any size."""
    images, targets = zip(*batch)
    return list(images), list(targets)
