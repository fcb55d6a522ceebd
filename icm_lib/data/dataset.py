"""Training pairs for the Object-MSE loss of Eq. (4): an image and its object mask
(Eq. (3)'s m), cut by the same random crop and flipped together.

Train mode: a random ``crop_size`` window and a horizontal flip with
probability 1/2, drawn from torch's random generator (so ``torch.manual_seed``
and DataLoader worker seeding govern them and a resumed run can restore them).
Images smaller than the crop are padded first: the image by reflection (no
artificial edge for the codec to spend bits on), the mask with 0 (padding is
background). Eval mode: the centre crop (padded the same way) when
``crop_size`` is given, the full image when it is ``None`` (then only batch
size 1 stacks). TCM's published training uses random 256x256 crops of
COCO/OpenImages the same way; it has no mask.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from icm_lib.data.layout import DatasetLayout
from icm_lib.data.masks import load_coco


def _pad_to(array: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Pad bottom/right up to ``height x width`` (reflect for images, zeros for masks)."""
    ph, pw = max(0, height - array.shape[0]), max(0, width - array.shape[1])
    if ph == 0 and pw == 0:
        return array
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (array.ndim - 2)
    if mode == "reflect" and min(array.shape[:2]) < 2:
        mode = "edge"  # a one-pixel side has nothing to reflect
    return np.pad(array, pad, mode=mode)


class ObjectMaskDataset(Dataset):
    """``(image float[3,h,w] in [0,1], mask float[1,h,w] in {0,1})`` pairs of one split.

    Args:
        layout: the dataset (its masks must be built: :func:`icm_lib.data.masks.build_masks`).
        split: ``train`` or ``val``.
        crop_size: crop side (int) or ``(height, width)``; ``None`` (eval only) keeps full images.
        train: random crop and flip when true; centre crop otherwise.
        cache: keep decoded images and masks in memory (for small datasets).
    """

    def __init__(
        self,
        layout: DatasetLayout,
        split: str,
        crop_size: int | tuple[int, int] | None = 256,
        train: bool = True,
        cache: bool = False,
    ):
        if crop_size is None and train:
            raise ValueError("training needs a crop_size")
        self.crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        self.train, self.cache = train, cache
        names = [Path(img["file_name"]).name for img in load_coco(layout.annotations(split))["images"]]
        self.image_files = [layout.images(split) / n for n in names]
        self.mask_files = [layout.masks(split) / f"{Path(n).stem}.png" for n in names]
        missing = [m for m in self.mask_files if not m.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} masks missing in {layout.masks(split)} (e.g. {missing[0].name}): "
                "build them first (icm_lib.data.masks.build_masks or notebook 01)"
            )
        self._memory: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.image_files)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Full image (``HxWx3`` uint8 RGB) and mask (``HxW`` uint8 0/1) of one item."""
        if index in self._memory:
            return self._memory[index]
        image = cv2.imread(str(self.image_files[index]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(self.mask_files[index]), cv2.IMREAD_GRAYSCALE)
        if image is None or mask is None:
            raise OSError(f"cannot read {self.image_files[index] if image is None else self.mask_files[index]}")
        if image.shape[:2] != mask.shape:
            raise ValueError(f"{self.mask_files[index]} is {mask.shape}, its image {image.shape[:2]}")
        pair = (np.ascontiguousarray(image[..., ::-1]), (mask > 127).astype(np.uint8))
        if self.cache:
            self._memory[index] = pair
        return pair

    def _window(self, height: int, width: int) -> tuple[int, int]:
        ch, cw = self.crop
        if self.train:
            top = int(torch.randint(0, height - ch + 1, ()).item())
            left = int(torch.randint(0, width - cw + 1, ()).item())
            return top, left
        return (height - ch) // 2, (width - cw) // 2

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        if self.crop is not None:
            ch, cw = self.crop
            image, mask = _pad_to(image, ch, cw, "reflect"), _pad_to(mask, ch, cw, "constant")
            top, left = self._window(*mask.shape)
            image, mask = image[top : top + ch, left : left + cw], mask[top : top + ch, left : left + cw]
        if self.train and torch.rand(()) < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        image_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask))[None].float()
        return image_t, mask_t
