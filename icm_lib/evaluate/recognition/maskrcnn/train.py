"""Mask R-CNN: train, fine-tune on coded images, and score bbox and segm mAP by COCOeval.

The paper judges its codecs with Mask R-CNN instance segmentation on COCO2017
(and fine-tunes it on each codec's decoded train split, Sec. 4). This module
is that stage for torchvision's Mask R-CNN (models in
:mod:`icm_lib.evaluate.recognition.maskrcnn.model`, data in
:mod:`icm_lib.evaluate.recognition.maskrcnn.data`):

* :func:`train_segmenter` trains from scratch, or fine-tunes from ``init`` (a
  checkpoint of this module or torchvision's COCO ResNet-50-FPN weights file),
  on the original or a codec's decoded train images. The checkpoint is written
  atomically after every epoch, so an interrupted run resumes, and a finished
  one with the same config and data (paths, and a fingerprint of the files: names, sizes, times) is reused.
* :func:`evaluate_segmenter` predicts on a split and scores it with pycocotools'
  COCOeval (:mod:`icm_lib.evaluate.recognition.cocoeval`): masks thresholded at 0.5,
  RLE-encoded, as in the COCO protocol.

Deviation: on the embedded data the model is the small from-scratch variant
(see :mod:`icm_lib.evaluate.recognition.maskrcnn.model`), not a COCO-trained ResNet-50.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import MaskRCNN
from tqdm.auto import tqdm

from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.recognition.cocoeval import coco_map, encode_mask
from icm_lib.evaluate.recognition.maskrcnn.data import CocoSegmentationDataset, collate
from icm_lib.evaluate.recognition.maskrcnn.model import (
    ARCHITECTURE_FIELDS,
    SegmenterConfig,
    build_segmenter,
    coco_config,
    coco_resnet50_fpn,
    load_state_dict_file,
)
from icm_lib.io import atomic_writer, file_sha256, files_fingerprint

__all__ = ["SegmenterConfig", "train_segmenter", "evaluate_segmenter", "load_segmenter", "predict"]

MASK_THRESHOLD = 0.5  # COCO protocol: a pixel belongs to the instance when its mask probability >= 0.5
GRAD_CLIP = 10.0  # from-scratch detectors spike early; clipping keeps the first epochs finite


def device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_segmenter(checkpoint: str | Path) -> tuple[MaskRCNN, SegmenterConfig]:
    """A Mask R-CNN (CPU, eval mode) and its config from a checkpoint of :func:`train_segmenter`,
    or from torchvision's COCO ResNet-50-FPN weights file (a bare state dict)."""
    state = load_state_dict_file(checkpoint)
    if "state_dict" not in state:
        config = coco_config()
        return coco_resnet50_fpn(checkpoint, config).eval(), config
    config = SegmenterConfig.from_dict(state["config"])
    model = build_segmenter(config, state["num_classes"])
    model.load_state_dict(state["state_dict"])
    return model.eval(), config


def train_segmenter(
    layout: DatasetLayout,
    out_path: str | Path,
    config: SegmenterConfig,
    images_dir: str | Path | None = None,
    init: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Train (or fine-tune from ``init``) a Mask R-CNN on ``layout``'s train split.

    Args:
        layout: the dataset; its ``instances_train.json`` gives the targets.
        out_path: the checkpoint to write (``weights_only`` loadable).
        config: architecture and schedule; when fine-tuning, the architecture
            fields come from ``init`` and the schedule from ``config``.
        images_dir: train on these images (a codec's decoded train split, same
            stems) instead of ``layout.images("train")``.
        init: start from this checkpoint or COCO weights file instead of random weights.
        force: retrain even when a finished checkpoint with the same config and data exists.

    Returns:
        ``out_path``.
    """
    out_path = Path(out_path)
    data = training_data(layout, images_dir, init)
    model = None
    if init is not None:
        model, init_config = load_segmenter(init)
        config = replace(config, **{k: getattr(init_config, k) for k in ARCHITECTURE_FIELDS})
    previous = _previous(out_path, config, data, force)
    if previous is not None and previous["meta"]["finished"]:
        return out_path
    dataset = CocoSegmentationDataset(layout, "train", images_dir, config.max_images, hflip=config.hflip)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    needed = max(dataset.category_ids, default=0) + 1
    model = model or build_segmenter(config, needed)
    num_classes = model.roi_heads.box_predictor.cls_score.out_features
    if num_classes < needed:
        raise ValueError(f"init model has {num_classes} outputs but the dataset uses category ids up to {needed - 1}")
    run = _Run(model.to(device()), dataset, config)
    if previous is not None:
        run.restore(previous)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # small convolutions: more threads only wait on each other
    try:
        for epoch in range(run.epoch, config.epochs):
            record = run.train_epoch(epoch)
            _save(out_path, run, num_classes, config, data, epoch + 1 == config.epochs, record)
    finally:
        torch.set_num_threads(threads)
    return out_path


def training_data(layout: DatasetLayout, images_dir: str | Path | None = None, init: str | Path | None = None) -> dict:
    """What a checkpoint's ``meta.data`` must hold for :func:`train_segmenter` to reuse it."""
    return {
        "dataset": _resolved(layout.root),
        "images_dir": _resolved(images_dir or layout.images("train")),
        "init": _resolved(init) if init else None,
        # what it learns from, not only where: the images and annotations, and the starting weights
        "files": files_fingerprint(images_dir or layout.images("train"), layout.annotations("train")),
        "init_sha256": file_sha256(init) if init else None,
    }


def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


def _previous(out_path: Path, config: SegmenterConfig, data: dict, force: bool) -> dict | None:
    """An existing checkpoint of this very training (same config and data), to reuse or resume."""
    if force or not out_path.is_file():
        return None
    state = load_state_dict_file(out_path)
    same = state.get("config") == config.to_dict() and state.get("meta", {}).get("data") == data
    return state if same else None


class _Run:
    """Model, loader, optimizer and schedule of one training."""

    def __init__(self, model: MaskRCNN, dataset: CocoSegmentationDataset, config: SegmenterConfig):
        generator = torch.Generator().manual_seed(config.seed)
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=collate,
            num_workers=config.workers,
            generator=generator,
        )
        self.model, self.config, self.epoch, self.history = model, config, 0, []
        params = [p for p in model.parameters() if p.requires_grad]
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        total = max(1, config.epochs * len(self.loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_cosine(config.warmup_iters, total))

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["training_state"]["optimizer"])
        self.scheduler.load_state_dict(state["training_state"]["scheduler"])
        self.epoch = state["training_state"]["epoch"]
        self.history = list(state["meta"]["history"])

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the loader; returns the epoch's mean losses and wall time."""
        self.model.train()
        dev, sums, start = device(), {}, time.perf_counter()
        bar = tqdm(self.loader, desc=f"Mask R-CNN epoch {epoch + 1}/{self.config.epochs}", leave=False)
        for images, targets in bar:
            images = [im.to(dev) for im in images]
            targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
            losses = self.model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Mask R-CNN loss became {loss.item()} at epoch {epoch + 1}; lower lr")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
            self.optimizer.step()
            self.scheduler.step()
            for name, value in {"loss": loss, **losses}.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        steps = max(1, len(self.loader))
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - start, **{k: v / steps for k, v in sums.items()}}
        self.epoch = epoch + 1
        self.history.append(record)
        return record


def _warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def _save(
    out_path: Path, run: _Run, num_classes: int, config: SegmenterConfig, data: dict, finished: bool, record: dict
) -> None:
    """Write the checkpoint atomically (:func:`icm_lib.io.atomic_writer`)."""
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "config": config.to_dict(),
        "num_classes": num_classes,
        "meta": {"finished": finished, "data": data, "history": run.history},
        # optimizer state only while unfinished (to resume); a finished checkpoint keeps the weights
        "training_state": None
        if finished
        else {
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "epoch": record["epoch"],
        },
    }
    with atomic_writer(out_path) as fh:
        torch.save(state, fh)


@torch.no_grad()
def predict(
    model: MaskRCNN, dataset: CocoSegmentationDataset, batch_size: int = 4, desc: str = "Mask R-CNN"
) -> list[dict]:
    """COCO result dicts (bbox, RLE segmentation, score) of ``model`` on every image of ``dataset``.

    Detections of category ids absent from the ground truth (unused COCO slots) are dropped.
    """
    dev = device()
    model = model.to(dev).eval()
    known = set(dataset.category_ids)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    detections = []
    for images, targets in tqdm(loader, desc=desc, leave=False):
        outputs = model([im.to(dev) for im in images])
        for target, out in zip(targets, outputs):
            detections += _to_coco(int(target["image_id"]), {k: v.cpu() for k, v in out.items()}, known)
    return detections


def _to_coco(image_id: int, output: dict, known: set[int]) -> list[dict]:
    masks = (output["masks"][:, 0] >= MASK_THRESHOLD).numpy().astype(np.uint8)
    dets = []
    for box, label, score, mask in zip(
        output["boxes"].tolist(), output["labels"].tolist(), output["scores"].tolist(), masks
    ):
        if label not in known:
            continue
        x1, y1, x2, y2 = box
        dets.append(
            {
                "image_id": image_id,
                "category_id": label,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": score,
                "segmentation": encode_mask(mask),
            }
        )
    return dets


def evaluate_segmenter(
    checkpoint: str | Path,
    layout: DatasetLayout,
    split: str = "val",
    images_dir: str | Path | None = None,
    max_images: int | None = None,
) -> dict[str, float]:
    """bbox and segm mAP@[.5:.95] and mAP50 of a Mask R-CNN on one split, by COCOeval.

    Args:
        checkpoint: a :func:`train_segmenter` checkpoint or torchvision's COCO ResNet-50-FPN weights.
        layout: the dataset (ground truth from ``instances_<split>.json``).
        split: ``"train"`` or ``"val"``.
        images_dir: score these images (a codec's decoded split, same stems) instead of the originals.
        max_images: score only the first this many images (by id); None scores all.

    Returns:
        ``{"bbox_map", "bbox_map50", "segm_map", "segm_map50"}``.
    """
    model, _ = load_segmenter(checkpoint)
    dataset = CocoSegmentationDataset(layout, split, images_dir, max_images)
    detections = predict(model, dataset)
    scores = {}
    for iou_type in ("bbox", "segm"):
        result = coco_map(dataset.coco, detections, iou_type=iou_type, image_ids=dataset.image_ids)
        scores[f"{iou_type}_map"], scores[f"{iou_type}_map50"] = result["map"], result["map50"]
    return scores
