"""YOLOv5 detectors (ultralytics): trained, fine-tuned on decoded images, scored by COCOeval.

The paper judges every codec by YOLOv5 detection mAP on the decoded COCO2017
val and VisDrone images, with the detector used as released ("pre-trained") and
fine-tuned on images coded by the same codec ("fine-tuned"). Here:

- the network is ultralytics' YOLOv5 built from its model yaml
  (``yolov5{n,s,m,l,x}.yaml``); for COCO the user gives a weights file
  (e.g. ultralytics' ``yolov5su.pt``), on the embedded data it is trained from
  scratch on the clean train split;
- predictions are converted to COCO detections and scored by
  :func:`icm_lib.evaluate.recognition.cocoeval.coco_map`, not by ultralytics' own metric,
  so YOLO and Mask R-CNN are scored alike.

Deviations: ultralytics' YOLOv5 is the anchor-free "v5u" head of ultralytics 8,
not the anchor-based head of the original YOLOv5 repository the paper used; on
the embedded data the detector is a small scale trained for few epochs at the
images' own size (see ``YoloConfig``), documented in the notebook. Training
output stays inside ``detectors_dir(profile)``; ``last.pt`` is used, never the
epoch ultralytics picks on the val split, since val is the evaluation split.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import icm_lib  # noqa: F401 - offline hygiene before ultralytics is imported
from icm_lib.data.layout import IMAGE_SUFFIXES
from icm_lib.evaluate.recognition.cocoeval import coco_map, image_ids_by_stem, load_coco
from icm_lib.io import file_sha256, files_fingerprint


@dataclass(frozen=True)
class YoloConfig:
    """Training and inference settings of one YOLO detector."""

    scale: str = "n"  # YOLOv5 scale: n, s, m, l, x (paper: the released YOLOv5 weights)
    imgsz: int = 256  # train and predict size; the embedded images are 160-256 px
    epochs: int = 30  # epochs of training from scratch on the clean train split
    batch: int = 16  # images per optimizer step (no gradient accumulation: ultralytics' nbs is set to it)
    fraction: float = 1.0  # share (<= 1) or count (> 1, the first ones) of train images used
    optimizer: str = "auto"  # ultralytics optimizer; "auto" picks AdamW and its own lr for short runs
    lr0: float = 0.001  # initial learning rate (ignored by optimizer="auto")
    warmup_epochs: float = 1.0  # linear warm-up epochs (ultralytics default 3)
    mosaic: float = 1.0  # probability of ultralytics' 4-image mosaic augmentation
    close_mosaic: int = 2  # last epochs trained without mosaic augmentation
    seed: int = 0  # training seed
    conf: float = 0.001  # prediction score threshold for mAP (COCO practice)
    iou: float = 0.6  # NMS IoU threshold at prediction
    max_det: int = 300  # detections kept per image (also COCOeval's cap)

    @property
    def model_yaml(self) -> str:
        return f"yolov5{self.scale}.yaml"

    def finetuned(self, epochs: int, fraction: float = 1.0, lr0: float | None = None) -> YoloConfig:
        """Settings for fine-tuning on decoded images: fewer epochs, no warm-up, no mosaic at the end."""
        return YoloConfig(
            **{
                **asdict(self),
                "epochs": epochs,
                "fraction": fraction,
                "warmup_epochs": 0.0,
                "close_mosaic": min(self.close_mosaic, epochs),
                "optimizer": "AdamW",
                "lr0": lr0 if lr0 is not None else self.lr0 / 4,
            }
        )


def split_params(yolo: dict) -> tuple[dict, dict]:
    """Notebook 04's ``YOLO`` parameters: the :class:`YoloConfig` overrides every dataset shares, and those
    nested under a dataset's name (e.g. a larger ``imgsz`` for ``aerial``)."""
    shared = {k: v for k, v in yolo.items() if not isinstance(v, dict)}
    return shared, {k: v for k, v in yolo.items() if isinstance(v, dict)}


def dataset_config(yolo: dict, dataset: str) -> YoloConfig:
    """The :class:`YoloConfig` of one dataset from notebook 04's ``YOLO`` parameters."""
    shared, per_dataset = split_params(yolo)
    return replace(YoloConfig(**shared), **per_dataset.get(dataset, {}))


def device() -> str:
    """``"0"`` (first GPU) when CUDA is available, else ``"cpu"``."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def write_data_yaml(path: Path, train_images: Path, val_images: Path, names: list[str]) -> Path:
    """An ultralytics data file with absolute train/val image folders (labels found beside ``images/``)."""
    import yaml

    from icm_lib.io import write_atomic

    data = {
        "train": str(Path(train_images).resolve()),
        "val": str(Path(val_images).resolve()),
        "names": dict(enumerate(names)),
    }
    write_atomic(Path(path), yaml.safe_dump(data, sort_keys=False))
    return Path(path)


def category_ids(gt) -> list[int]:
    """COCO category id of each YOLO class index (classes are the sorted category ids, as the data writers number them)."""
    return sorted(c["id"] for c in load_coco(gt).dataset["categories"])


def class_names(gt) -> list[str]:
    """Class names in YOLO index order."""
    cats = sorted(load_coco(gt).dataset["categories"], key=lambda c: c["id"])
    return [c["name"] for c in cats]


def data_fingerprint(data_yaml: Path) -> str:
    """What a detector learns from: the data file's bytes, and :func:`icm_lib.io.files_fingerprint` of its
    train images and their labels."""
    import yaml

    data_yaml = Path(data_yaml)
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    train = Path(data["train"])
    if not train.is_absolute():  # relative to the file's `path`, as ultralytics reads it
        train = Path(data.get("path") or data_yaml.parent) / train
    parts = list(train.parts)
    if "images" in parts:  # labels/ beside the last images/, as ultralytics finds them
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    return hashlib.sha256(data_yaml.read_bytes() + files_fingerprint(train, Path(*parts)).encode()).hexdigest()


MARKER = "training.json"  # in a run folder: what the finished run was trained with (its reuse check)


def training_record(data_yaml: Path, cfg: YoloConfig, init: Path | None = None) -> dict:
    """What a run's marker must hold for :func:`train_yolo` to reuse it: settings, data and starting weights."""
    return {
        "config": asdict(cfg),
        "data": str(data_yaml),
        "init": str(init) if init else None,
        "data_fingerprint": data_fingerprint(data_yaml),
        "init_sha256": file_sha256(init) if init else None,
    }


def train_yolo(data_yaml: Path, run_dir: Path, cfg: YoloConfig, init: Path | None = None) -> Path:
    """Train (or fine-tune from ``init``) a YOLOv5 detector; reused when already finished.

    Args:
        data_yaml: ultralytics data file.
        run_dir: the run folder (``weights/last.pt`` and ``training.json`` go there).
        cfg: settings. A finished run is reused only when its settings, its data (the data file and
            :func:`data_fingerprint` of the train images and labels) and its starting weights (sha256)
            are those asked for; otherwise it is trained again.
        init: weights to start from (fine-tuning); None trains from the model yaml.

    Returns:
        Path of the trained weights (``run_dir/weights/last.pt``).
    """
    run_dir = Path(run_dir)
    weights = run_dir / "weights" / "last.pt"
    marker = run_dir / MARKER
    wanted = training_record(data_yaml, cfg, init)
    if weights.is_file() and marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if {k: done.get(k) for k in wanted} == wanted:
            return weights
    from ultralytics import YOLO

    start = time.perf_counter()
    model = YOLO(str(init) if init else cfg.model_yaml)
    model.train(
        data=str(data_yaml),
        epochs=cfg.epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        fraction=int(cfg.fraction) if cfg.fraction > 1 else float(cfg.fraction),
        nbs=cfg.batch,
        optimizer=cfg.optimizer,
        lr0=cfg.lr0,
        warmup_epochs=cfg.warmup_epochs,
        mosaic=cfg.mosaic,
        close_mosaic=cfg.close_mosaic,
        seed=cfg.seed,
        workers=0,
        device=device(),
        project=str(run_dir.parent.resolve()),
        name=run_dir.name,
        exist_ok=True,
        plots=False,
        val=False,
        pretrained=bool(init),
        verbose=False,
        amp=device() != "cpu",
        trainer=_trainer_class(),
    )
    if not weights.is_file():
        raise RuntimeError(f"ultralytics finished without writing {weights}")
    payload = {
        **wanted,
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_per_epoch": round((time.perf_counter() - start) / cfg.epochs, 1),
    }
    from icm_lib.io import write_atomic

    write_atomic(marker, json.dumps(payload, indent=2))
    return weights


def _trainer_class():
    """ultralytics' detection trainer without its own validation passes.

    The val split is scored afterwards by COCOeval; ultralytics would otherwise
    run it after the last epoch and again on ``best.pt`` (seconds per
    fine-tuning run on a CPU), and its choice of ``best.pt`` would peek at it.
    """
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import strip_optimizer

    class TrainOnlyDetectionTrainer(DetectionTrainer):
        def validate(self):
            fitness = -float(self.loss.detach().cpu().sum()) if self.loss is not None else 0.0
            return {}, fitness

        def final_eval(self):
            if self.last.exists():
                strip_optimizer(self.last)

    return TrainOnlyDetectionTrainer


def image_files(folder: Path) -> list[Path]:
    """Images of a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def predict_coco(weights: Path, images: list[Path], gt, cfg: YoloConfig, chunk: int = 64) -> list[dict]:
    """Run the detector on ``images``; COCO detections with ids taken from ``gt`` (by file stem)."""
    from ultralytics import YOLO

    ids, cats = image_ids_by_stem(gt), category_ids(gt)
    unknown = [p.name for p in images if p.stem not in ids]
    if unknown:
        raise ValueError(f"{len(unknown)} image(s) absent from the ground truth, e.g. {unknown[0]}")
    model = YOLO(str(weights))
    predictor = _multi_label_predictor()
    detections = []
    for i in range(0, len(images), chunk):
        batch = [str(p) for p in images[i : i + chunk]]
        for result in model.predict(
            batch,
            imgsz=cfg.imgsz,
            conf=cfg.conf,
            iou=cfg.iou,
            max_det=cfg.max_det,
            device=device(),
            verbose=False,
            stream=True,
            predictor=predictor,
        ):
            detections += _coco_detections(result, ids[Path(result.path).stem], cats)
    return detections


def _multi_label_predictor():
    """ultralytics' predictor with the NMS of its validator (and of YOLOv5's val.py): multi-label.

    A box may be kept once per class scoring above ``conf``, as when YOLOv5
    reports COCO mAP; plain ``predict`` keeps only the best class per box and
    scores about a third lower on weak detectors.
    """
    from ultralytics.models.yolo.detect import DetectionPredictor
    from ultralytics.utils import nms, ops

    class MultiLabelDetectionPredictor(DetectionPredictor):
        def postprocess(self, preds, img, orig_imgs, **kwargs):
            preds = nms.non_max_suppression(
                preds,
                self.args.conf,
                self.args.iou,
                self.args.classes,
                self.args.agnostic_nms,
                max_det=self.args.max_det,
                multi_label=True,
                end2end=getattr(self.model, "end2end", False),
            )
            if not isinstance(orig_imgs, list):
                orig_imgs = ops.convert_torch2numpy_batch(orig_imgs)[..., ::-1]
            return self.construct_results(preds, img, orig_imgs)

    return MultiLabelDetectionPredictor


def _coco_detections(result, image_id: int, cats: list[int]) -> list[dict]:
    boxes = result.boxes
    xyxy, scores, classes = boxes.xyxy.cpu().tolist(), boxes.conf.cpu().tolist(), boxes.cls.cpu().int().tolist()
    return [
        {"image_id": image_id, "category_id": cats[c], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
        for (x1, y1, x2, y2), s, c in zip(xyxy, scores, classes)
    ]


def evaluate_yolo(weights: Path, images: Path | list[Path], gt_json: Path, cfg: YoloConfig) -> dict[str, float]:
    """bbox mAP@[.5:.95] and mAP50 of a detector by COCOeval, on a list of images or every image of a folder.

    Only the images given are scored (COCOeval ``imgIds``), so a subset of the
    val split is judged against its own ground truth.
    """
    gt = load_coco(gt_json)
    images = image_files(images) if isinstance(images, (str, Path)) else [Path(p) for p in images]
    if not images:
        raise FileNotFoundError("no images to evaluate")
    missing = [p for p in images if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) missing, e.g. {missing[0]}")
    detections = predict_coco(weights, images, gt, cfg)
    ids = image_ids_by_stem(gt)
    result = coco_map(gt, detections, "bbox", image_ids=[ids[p.stem] for p in images], max_dets=cfg.max_det)
    return {"map": result["map"], "map50": result["map50"]}
