"""Mask R-CNN stage: targets from a hand-built COCO file, training, caching, loading, COCOeval scoring."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.recognition.maskrcnn import train as segmentation
from icm_lib.evaluate.recognition.maskrcnn.data import CocoSegmentationDataset
from icm_lib.evaluate.recognition.maskrcnn.model import SegmenterConfig, build_segmenter, coco_resnet50_fpn
from icm_lib.evaluate.recognition.maskrcnn.train import evaluate_segmenter, load_segmenter, train_segmenter

H, W = 48, 64
# A network small enough to train a step in well under a second.
TINY = SegmenterConfig(
    width=8,
    fpn_channels=16,
    head_channels=16,
    mask_channels=8,
    mask_convs=1,
    min_size=48,
    max_size=64,
    rpn_proposals_train=32,
    rpn_proposals_test=16,
    box_samples=16,
    epochs=1,
    batch_size=2,
)


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def _write_split(root, split, objects, background=40):
    """Images with filled squares and a COCO file; ``objects[i]`` = list of (category, x, y, side, crowd)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    anns = []
    for i, objs in enumerate(objects, start=1):
        im = Image.new("RGB", (W, H), (background,) * 3)
        draw = ImageDraw.Draw(im)
        for cat, x, y, s, crowd in objs:
            draw.rectangle([x, y, x + s - 1, y + s - 1], fill=(200, 60 * cat, 30))
            ann = {
                "id": len(anns) + 1,
                "image_id": i,
                "category_id": cat,
                "bbox": [x, y, s, s],
                "area": s * s,
                "iscrowd": crowd,
                "segmentation": _square(x, y, s),
            }
            if crowd:  # crowd regions come as RLE, as in COCO
                rle = mask_utils.frPyObjects(_square(x, y, s), H, W)[0]
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            anns.append(ann)
        im.save(root / "images" / split / f"img{i}.png")
    coco = {
        "images": [{"id": i, "file_name": f"img{i}.png", "width": W, "height": H} for i in range(1, len(objects) + 1)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "red"}, {"id": 3, "name": "orange"}],
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


@pytest.fixture
def layout(tmp_path) -> DatasetLayout:
    root = tmp_path / "shapes"
    train = [[(1, 4, 4, 16, 0), (3, 30, 20, 12, 0), (1, 50, 2, 10, 1)], [], [(3, 10, 10, 20, 0)], [(1, 40, 8, 14, 0)]]
    _write_split(root, "train", train)
    _write_split(root, "val", [[(1, 6, 6, 18, 0), (3, 36, 20, 14, 0)], [(3, 20, 10, 16, 0)], []])
    return DatasetLayout(root)


def test_dataset_targets(layout):
    ds = CocoSegmentationDataset(layout, "train")
    assert len(ds) == 4 and ds.category_ids == [1, 3]
    image, target = ds[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    # the crowd region is left out; boxes are x1 y1 x2 y2; labels are COCO category ids
    assert target["boxes"].tolist() == [[4, 4, 20, 20], [30, 20, 42, 32]]
    assert target["labels"].tolist() == [1, 3]
    assert target["masks"].shape == (2, H, W) and target["masks"].dtype == torch.uint8
    ys, xs = np.nonzero(target["masks"][1].numpy())
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (30, 41, 20, 31)
    empty = ds[1][1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["masks"].shape == (0, H, W)


def test_hflip_moves_boxes_with_masks(layout):
    ds = CocoSegmentationDataset(layout, "train", hflip=True)
    random.seed(0)
    seen = set()
    for _ in range(8):
        image, target = ds[3]
        ys, xs = np.nonzero(target["masks"][0].numpy())
        assert target["boxes"][0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert image[0, ys[0], xs[0]] > 0.5  # the object's pixels moved with it
        seen.add(int(xs.min()))
    assert seen == {40, W - 54}


def test_images_dir_reads_decoded_copies_with_the_same_ground_truth(layout, tmp_path):
    decoded = tmp_path / "decoded" / "images" / "train"
    decoded.mkdir(parents=True)
    for path in layout.image_files("train"):
        Image.new("RGB", (W, H), (255, 255, 255)).save(decoded / path.name)
    ds = CocoSegmentationDataset(layout, "train", images_dir=decoded, max_images=2)
    image, target = ds[0]
    assert len(ds) == 2 and image.min() == 1.0 and target["labels"].tolist() == [1, 3]
    Image.new("RGB", (W // 2, H), 0).save(decoded / "img1.png")
    with pytest.raises(ValueError, match="size 32x48 differs"):
        ds[0]
    (decoded / "img2.png").unlink()
    with pytest.raises(FileNotFoundError, match="no image for 'img2.png'"):
        ds[1]


def test_train_saves_a_loadable_checkpoint_and_reuses_it(layout, tmp_path):
    out = tmp_path / "maskrcnn" / "checkpoint.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert train_segmenter(layout, out, TINY) == out  # trains on TINY.threads == 1 thread
        assert torch.get_num_threads() == 2  # and gives the caller its thread count back
    finally:
        torch.set_num_threads(threads)
    state = torch.load(out, weights_only=True)
    assert state["meta"]["finished"] and state["num_classes"] == 4 and len(state["meta"]["history"]) == 1
    assert state["training_state"] is None  # optimizer state is kept only to resume an unfinished run
    assert np.isfinite(state["meta"]["history"][0]["loss"])
    model, config = load_segmenter(out)
    assert config == TINY and not model.training
    with torch.no_grad():
        (out_dict,) = model([torch.rand(3, H, W)])
    assert set(out_dict) == {"boxes", "labels", "scores", "masks"}
    stamp = out.stat().st_mtime_ns
    train_segmenter(layout, out, TINY)  # same config and data: reused, not retrained
    assert out.stat().st_mtime_ns == stamp
    train_segmenter(layout, out, TINY, force=True)
    assert out.stat().st_mtime_ns != stamp
    stamp = out.stat().st_mtime_ns
    image = sorted(layout.images("train").iterdir())[0]
    image.write_bytes(image.read_bytes())  # rewritten in place (a codec recoded it): other data, trained again
    train_segmenter(layout, out, TINY)
    assert out.stat().st_mtime_ns != stamp


def test_an_interrupted_training_resumes_from_its_last_epoch(layout, tmp_path, monkeypatch):
    out, config = tmp_path / "ck.pt", replace(TINY, epochs=2)
    train_epoch = segmentation._Run.train_epoch

    def interrupted(run, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(run, epoch)

    monkeypatch.setattr(segmentation._Run, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(layout, out, config)
    first = torch.load(out, weights_only=True)
    assert not first["meta"]["finished"] and first["training_state"]["epoch"] == 1
    monkeypatch.setattr(segmentation._Run, "train_epoch", train_epoch)
    train_segmenter(layout, out, config)
    history = torch.load(out, weights_only=True)["meta"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first["meta"]["history"][0]


def test_fine_tune_keeps_the_initial_architecture(layout, tmp_path):
    base = train_segmenter(layout, tmp_path / "base.pt", TINY)
    schedule = SegmenterConfig(fpn_channels=999, epochs=1, batch_size=4, lr=0.001, min_size=48, max_size=64)
    tuned = train_segmenter(layout, tmp_path / "tuned.pt", schedule, init=base)
    _, config = load_segmenter(tuned)
    assert config.fpn_channels == TINY.fpn_channels and config.lr == 0.001
    assert torch.load(tuned, weights_only=True)["meta"]["data"]["init"] == str(base.resolve())


class _GroundTruthModel(torch.nn.Module):
    """Stands in for Mask R-CNN: returns the next images' ground truth as confident detections."""

    def __init__(self, dataset):
        super().__init__()
        self.targets = [dataset[i][1] for i in range(len(dataset))]

    def forward(self, images):
        out = []
        for _ in images:
            t = self.targets.pop(0)
            out.append(
                {
                    "boxes": t["boxes"],
                    "labels": t["labels"],
                    "scores": torch.ones(len(t["labels"])),
                    "masks": t["masks"][:, None].float(),
                }
            )
        return out


def test_evaluate_ground_truth_scores_one(layout, monkeypatch):
    model = _GroundTruthModel(CocoSegmentationDataset(layout, "val"))
    monkeypatch.setattr(segmentation, "load_segmenter", lambda checkpoint: (model, TINY))
    scores = evaluate_segmenter("unused.pt", layout)
    assert scores == pytest.approx({"bbox_map": 1.0, "bbox_map50": 1.0, "segm_map": 1.0, "segm_map50": 1.0})


def test_evaluate_a_trained_checkpoint_end_to_end(layout, tmp_path):
    out = train_segmenter(layout, tmp_path / "ck.pt", TINY)
    scores = evaluate_segmenter(out, layout, split="val", max_images=2)
    assert set(scores) == {"bbox_map", "bbox_map50", "segm_map", "segm_map50"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_bad_config_and_missing_files_give_clear_errors(layout, tmp_path):
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        SegmenterConfig(backbone="vgg")
    with pytest.raises(ValueError, match="epochs, batch_size and threads must be at least 1"):
        SegmenterConfig(epochs=0)
    with pytest.raises(ValueError, match=r"unknown SegmenterConfig field\(s\) \['epoch'\]"):
        SegmenterConfig.from_dict({"epoch": 3})
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_segmenter(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no image folder"):
        train_segmenter(layout, tmp_path / "x.pt", TINY, images_dir=tmp_path / "nowhere")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not torchvision ResNet-50-FPN Mask R-CNN weights"):
        load_segmenter(tmp_path / "other.pt")


def test_coco_resnet50_weights_load_from_a_path(tmp_path):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)  # the layout of the published COCO file
    path = tmp_path / "maskrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)
    model, config = load_segmenter(path)
    for name in (
        "backbone.body.layer4.2.conv3.weight",
        "roi_heads.mask_predictor.mask_fcn_logits.weight",
        "backbone.body.bn1.running_var",
    ):
        assert torch.equal(model.state_dict()[name], reference.state_dict()[name])
    assert model.roi_heads.box_predictor.cls_score.out_features == 91
    assert config.backbone == "resnet50" and config.min_size == 800
    with pytest.raises(ValueError, match="COCO weights need backbone 'resnet50'"):
        coco_resnet50_fpn(path, SegmenterConfig())


def test_slim_resnet_width_scales_the_trunk():
    narrow, wide = (build_segmenter(SegmenterConfig(width=w), 5) for w in (16, 64))
    assert narrow.backbone.body.layer4[0].conv1.out_channels == 128
    assert wide.backbone.body.layer4[0].conv1.out_channels == 512
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters()) / 4


@pytest.mark.slow
def test_short_training_on_smoke_shapes_learns(smoke_root, tmp_path, monkeypatch):
    """A real (if short) from-scratch schedule on the smoke shapes: masks better than nothing."""
    monkeypatch.setenv("ICM_ROOT", str(smoke_root))
    layout = DatasetLayout.of("smoke", "shapes")
    out = train_segmenter(layout, tmp_path / "ck.pt", SegmenterConfig(epochs=20, batch_size=4, warmup_iters=20))
    history = torch.load(out, weights_only=True)["meta"]["history"]
    assert history[-1]["loss_mask"] < history[0]["loss_mask"]
    scores = evaluate_segmenter(out, layout, split="train")  # 24 images seen 20 times each
    assert scores["segm_map50"] > 0 and scores["bbox_map50"] > 0
