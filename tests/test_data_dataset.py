"""ObjectMaskDataset: image and mask stay aligned through random crops, flips and padding."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from icm_lib.data.dataset import ObjectMaskDataset
from icm_lib.data.layout import DatasetLayout
from icm_lib.data.masks import build_masks


@pytest.fixture
def mirror_layout(tmp_path):
    """Images whose pixels equal their masks (an asymmetric L and a small square), one smaller than the crop."""
    layout = DatasetLayout(tmp_path / "mirror")
    images = [
        {"id": 1, "file_name": "big.png", "height": 40, "width": 52},
        {"id": 2, "file_name": "small.png", "height": 12, "width": 9},
    ]
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [3, 5, 30, 30],
            "segmentation": [[3, 5, 12, 5, 12, 26, 33, 26, 33, 35, 3, 35]],
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [40, 2, 6, 6],
            "segmentation": [[40, 2, 46, 2, 46, 8, 40, 8]],
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "iscrowd": 0,
            "bbox": [1, 1, 4, 7],
            "segmentation": [[1, 1, 5, 1, 5, 8, 1, 8]],
        },
    ]
    for split in ("train", "val"):
        layout.annotations(split).parent.mkdir(parents=True, exist_ok=True)
        layout.annotations(split).write_text(
            json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
        )
        layout.images(split).mkdir(parents=True)
        for img in images:  # black images of the listed size (their headers are checked against the entries)
            cv2.imwrite(str(layout.images(split) / img["file_name"]), np.zeros((img["height"], img["width"]), np.uint8))
        build_masks(layout, split, verbose=False)
        for img in images:  # now make each image a copy of its mask (grey, 0/255)
            mask = cv2.imread(str(layout.masks(split) / img["file_name"]), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(layout.images(split) / img["file_name"]), np.repeat(mask[..., None], 3, 2))
    return layout


def test_random_crops_and_flips_keep_image_and_mask_aligned(mirror_layout):
    torch.manual_seed(0)
    data = ObjectMaskDataset(mirror_layout, "train", crop_size=(24, 20), train=True)
    crops, flips = set(), 0
    for _ in range(60):
        image, mask = data[0]
        assert image.shape == (3, 24, 20) and mask.shape == (1, 24, 20) and image.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(image, mask.expand(3, -1, -1))
        crops.add(image.sum().item())
        flips += int(_is_flipped(mirror_layout, image[0]))
    assert len(crops) > 5 and 5 < flips < 55  # the crops move, and about half are flipped


def _is_flipped(layout, crop):
    """Whether ``crop`` appears in the mirrored image rather than in the original."""
    full = cv2.imread(str(layout.masks("train") / "big.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    h, w = crop.shape
    target = crop.numpy()

    def found(img):
        return any(
            np.array_equal(img[y : y + h, x : x + w], target)
            for y in range(img.shape[0] - h + 1)
            for x in range(img.shape[1] - w + 1)
        )

    return found(full[:, ::-1]) and not found(full)


def test_small_images_are_padded_mask_with_zero(mirror_layout):
    torch.manual_seed(1)
    data = ObjectMaskDataset(mirror_layout, "train", crop_size=16, train=True)
    small = cv2.imread(str(mirror_layout.masks("train") / "small.png"), cv2.IMREAD_GRAYSCALE)
    for _ in range(10):
        image, mask = data[1]
        assert image.shape == (3, 16, 16) and mask.shape == (1, 16, 16)
        assert mask.sum().item() == np.count_nonzero(small)  # the whole image is in the crop, padding is background
        assert image.sum() > image[:, mask[0] > 0].sum()  # reflection puts image content in the padding


def test_eval_mode_is_deterministic_centre_crop_or_full_image(mirror_layout):
    centre = ObjectMaskDataset(mirror_layout, "val", crop_size=(20, 30), train=False)
    a, b = centre[0], centre[0]
    torch.testing.assert_close(a, b)
    full_mask = cv2.imread(str(mirror_layout.masks("val") / "big.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    np.testing.assert_array_equal(a[1][0].numpy(), full_mask[10:30, 11:41])
    image, mask = ObjectMaskDataset(mirror_layout, "val", crop_size=None, train=False, cache=True)[0]
    assert mask.shape == (1, 40, 52) and image.shape == (3, 40, 52)


def test_missing_masks_are_reported(mirror_layout):
    (mirror_layout.masks("val") / "small.png").unlink()
    with pytest.raises(FileNotFoundError, match="build them first"):
        ObjectMaskDataset(mirror_layout, "val", crop_size=8)


def test_smoke_shapes_pairs(smoke_root, monkeypatch):
    monkeypatch.setenv("ICM_ROOT", str(smoke_root))
    data = ObjectMaskDataset(DatasetLayout.of("smoke", "shapes"), "train", crop_size=64)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4, shuffle=True)))
    assert batch[0].shape == (4, 3, 64, 64) and batch[1].shape == (4, 1, 64, 64)
    assert 0.0 <= batch[0].min() and batch[0].max() <= 1.0
