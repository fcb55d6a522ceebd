"""The machines that judge decoded images, behind one interface.

Shindo et al. evaluate every codec with YOLOv5 (detection, bbox mAP) and Mask
R-CNN (instance segmentation, bbox and segm mAP), each "pre-trained" (trained on
clean images) and "fine-tuned" on images decoded by the codec under test. A
:class:`Recognizer` does three things for the orchestration in
:mod:`icm_lib.evaluate.recognition.curves`: give the clean model (trained here and
cached, shipped with the zoo (:mod:`icm_lib.evaluate.recognition.shipped`), or the user's weights file), fine-tune it on a codec's decoded train
images (cached), and score a model on a val split by COCOeval.

YOLO lives in :mod:`icm_lib.evaluate.recognition.yolo`, Mask R-CNN in
:mod:`icm_lib.evaluate.recognition.maskrcnn.train`; a fake recognizer in the tests stands in
for both where only the plumbing is tested.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.recognition import shipped
from icm_lib.evaluate.recognition import yolo as detection
from icm_lib.evaluate.recognition.cocoeval import load_coco
from icm_lib.evaluate.recognition.maskrcnn import train as segmentation
from icm_lib.evaluate.recognition.maskrcnn.train import SegmenterConfig
from icm_lib.evaluate.recognition.yolo import YoloConfig
from icm_lib.paths import detectors_dir


def seeded_name(codec_id: str, seed: int) -> str:
    """A fine-tuned detector's file or folder name: the codec's id, with the seed after it when it is not 0
    (so the fine-tunes made before there were seeds are those of seed 0)."""
    return codec_id if seed == 0 else f"{codec_id}-seed{seed}"


class Recognizer(ABC):
    """A detector or segmenter as the evaluation uses it."""

    name: str  # "yolo" or "maskrcnn": folder and results name
    metric_keys: tuple[str, ...]  # what :meth:`evaluate` returns, "map" and "map50" first

    def supports(self, layout: DatasetLayout) -> bool:
        """Whether this recognizer can be trained and scored on ``layout`` (e.g. masks needed)."""
        return True

    @abstractmethod
    def clean(self, layout: DatasetLayout, profile: str) -> Path:
        """The model trained on the clean train split (trained once, then reused) or the user's weights."""

    @abstractmethod
    def finetuned(
        self, base: Path, layout: DatasetLayout, codec_id: str, train_images: Path, profile: str, seed: int = 0
    ) -> Path:
        """``base`` fine-tuned on a codec's decoded train images (``train_images``; same stems) with ``seed``
        (shuffling, augmentation); cached per seed."""

    @abstractmethod
    def evaluate(
        self, weights: Path, layout: DatasetLayout, images_dir: Path | None, limit: int | None
    ) -> dict[str, float]:
        """Scores on the first ``limit`` val images by name (all when None), read from ``images_dir``
        (a codec's decoded val folder) or the original images when None."""


@dataclass
class YoloRecognizer(Recognizer):
    """YOLOv5 (ultralytics): bbox mAP. ``weights`` maps a dataset to a user's weights file (e.g. COCO)."""

    config: YoloConfig
    finetune_epochs: int = 3
    finetune_lr: float | None = None
    weights: dict[str, str] | None = None
    per_dataset: dict[str, dict] | None = None  # dataset -> YoloConfig overrides (e.g. a larger imgsz for aerial)
    name: str = "yolo"
    metric_keys: tuple[str, ...] = ("map", "map50")

    def config_for(self, layout: DatasetLayout) -> YoloConfig:
        return replace(self.config, **(self.per_dataset or {}).get(layout.name, {}))

    def clean(self, layout: DatasetLayout, profile: str) -> Path:
        given = (self.weights or {}).get(layout.name)
        if given:
            return _existing(given, f"YOLO weights for {layout.name}")
        run_dir = detectors_dir(profile) / "yolo" / layout.name / "clean"
        shipped.install_yolo(profile, layout, run_dir, self.config_for(layout))  # the zoo's, when it fits
        return detection.train_yolo(layout.yolo_yaml, run_dir, self.config_for(layout))

    def finetuned(
        self, base: Path, layout: DatasetLayout, codec_id: str, train_images: Path, profile: str, seed: int = 0
    ) -> Path:
        run_dir = detectors_dir(profile) / "yolo" / layout.name / "finetuned" / seeded_name(codec_id, seed)
        val_images = Path(train_images).parent / "val"
        if not val_images.is_dir():
            val_images = layout.images("val")
        data = detection.write_data_yaml(
            run_dir.parent / f"{codec_id}.yaml",
            train_images,
            val_images,
            detection.class_names(layout.annotations("train")),
        )
        config = replace(self.config_for(layout).finetuned(self.finetune_epochs, lr0=self.finetune_lr), seed=seed)
        return detection.train_yolo(data, run_dir, config, init=base)

    def evaluate(
        self, weights: Path, layout: DatasetLayout, images_dir: Path | None, limit: int | None
    ) -> dict[str, float]:
        files = layout.image_files("val")[:limit]
        if images_dir is not None:
            files = [Path(images_dir) / f"{f.stem}.png" for f in files]
        return detection.evaluate_yolo(weights, files, layout.annotations("val"), self.config_for(layout))


@dataclass
class MaskRCNNRecognizer(Recognizer):
    """torchvision Mask R-CNN: bbox and segm mAP; needs instance masks (not on box-only data)."""

    config: SegmenterConfig
    finetune_epochs: int = 2
    finetune_lr: float | None = None
    weights: dict[str, str] | None = None
    name: str = "maskrcnn"
    metric_keys: tuple[str, ...] = ("map", "map50", "segm_map", "segm_map50")

    def supports(self, layout: DatasetLayout) -> bool:
        return layout.has_segmentation("val")

    def clean(self, layout: DatasetLayout, profile: str) -> Path:
        given = (self.weights or {}).get(layout.name)
        if given:
            return _existing(given, f"Mask R-CNN weights for {layout.name}")
        out = detectors_dir(profile) / "maskrcnn" / layout.name / "clean.pt"
        shipped.install_maskrcnn(profile, layout, out, self.config)  # the zoo's, when it fits
        return segmentation.train_segmenter(layout, out, self.config)

    def finetuned(
        self, base: Path, layout: DatasetLayout, codec_id: str, train_images: Path, profile: str, seed: int = 0
    ) -> Path:
        n_images = _check_first_by_id(layout, Path(train_images))
        config = replace(
            self.config,
            epochs=self.finetune_epochs,
            max_images=n_images,
            lr=self.finetune_lr if self.finetune_lr is not None else self.config.lr / 10,
            warmup_iters=0,
            seed=seed,
        )
        out = detectors_dir(profile) / "maskrcnn" / layout.name / "finetuned" / f"{seeded_name(codec_id, seed)}.pt"
        return segmentation.train_segmenter(layout, out, config, images_dir=train_images, init=base)

    def evaluate(
        self, weights: Path, layout: DatasetLayout, images_dir: Path | None, limit: int | None
    ) -> dict[str, float]:
        scores = segmentation.evaluate_segmenter(weights, layout, "val", images_dir, max_images=limit)
        return {
            "map": scores["bbox_map"],
            "map50": scores["bbox_map50"],
            "segm_map": scores["segm_map"],
            "segm_map50": scores["segm_map50"],
        }


def _check_first_by_id(layout: DatasetLayout, train_images: Path) -> int:
    """The number of decoded train images, checked to be the first ones by image id, which is what
    the segmenter's ``max_images`` takes (the coder takes the first ones by file name)."""
    stems = {p.stem for p in train_images.glob("*.png")}
    images = sorted(load_coco(layout.annotations("train")).dataset["images"], key=lambda i: i["id"])
    first = {Path(i["file_name"]).stem for i in images[: len(stems)]}
    if first != stems:
        raise ValueError(
            f"{train_images}: the coded train images are not the first {len(stems)} by image id; "
            "code all train images (FINETUNE_IMAGES: 0) for this dataset"
        )
    return len(stems)


def _existing(path: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path} (edit the path in notebooks/params/<profile>.yaml)")
    return path


def build_recognizers(
    names: list[str], yolo: dict, maskrcnn: dict, finetune_epochs: dict, weights: dict
) -> list[Recognizer]:
    """Recognizers by name from plain parameter dicts (a notebook's parameters cell).

    Args:
        names: ``"yolo"`` and/or ``"maskrcnn"``.
        yolo, maskrcnn: overrides of :class:`YoloConfig` / :class:`SegmenterConfig` fields; for YOLO a
            nested mapping under a dataset's name overrides fields for that dataset only.
        finetune_epochs: epochs of fine-tuning per recognizer name.
        weights: per recognizer name, a mapping dataset -> weights file (paper profile).
    """
    recognizers: list[Recognizer] = []
    for name in names:
        if name == "yolo":
            shared, per_dataset = detection.split_params(yolo)
            recognizers.append(
                YoloRecognizer(
                    YoloConfig(**shared),
                    finetune_epochs.get(name, 3),
                    weights=weights.get(name),
                    per_dataset=per_dataset,
                )
            )
        elif name == "maskrcnn":
            recognizers.append(
                MaskRCNNRecognizer(SegmenterConfig(**maskrcnn), finetune_epochs.get(name, 2), weights=weights.get(name))
            )
        else:
            raise ValueError(f"unknown detector {name!r}; expected 'yolo' or 'maskrcnn'")
    return recognizers
