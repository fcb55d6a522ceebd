"""torchvision Mask R-CNN builders: the paper's ResNet-50-FPN and a small from-scratch variant.

The paper evaluates instance segmentation with Mask R-CNN (ResNet-50-FPN,
COCO-trained, from Detectron2/torchvision) on coded COCO2017 images.
:func:`build_segmenter` with ``backbone="resnet50"`` gives exactly
torchvision's ``maskrcnn_resnet50_fpn`` layout (frozen batch norm, 3 trainable
stages, FPN width 256), so COCO weights from a file the user gives load into
it (:func:`coco_resnet50_fpn`); nothing is ever downloaded.

Deviation (embedded data, CPU): no pretrained weights exist offline, so the
embedded ``shapes`` set uses a smaller Mask R-CNN trained from scratch: a
ResNet-18/34 trunk with trainable batch norm, a narrow FPN, smaller anchors
for small objects, input sized to the 160-256 px images, fewer RPN proposals
and RoI samples, and lighter box and mask heads (on the CPU the mask head, run
on every positive RoI at 14x14, costs more than the slim trunk). Its outputs
are the same (boxes, labels, scores, per-instance mask probabilities).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.misc import FrozenBatchNorm2d

BACKBONES = ("resnet18", "resnet34", "resnet50")
COCO_NUM_CLASSES = 91  # torchvision's COCO models: background + category ids 1..90
FPN_LEVELS = ["0", "1", "2", "3"]
RESNET_BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


@dataclass
class SegmenterConfig:
    """Architecture and training schedule of one Mask R-CNN (torchvision defaults in brackets)."""

    backbone: str = "resnet18"  # resnet18 | resnet34 (from scratch) | resnet50 (the paper's, COCO weights loadable)
    width: int = 16  # channels of the first ResNet-18/34 stage [64]; smaller gives a slimmer trunk of the same depth
    fpn_channels: int = 32  # FPN width [256]; resnet50 always uses 256 so COCO weights fit
    head_channels: int = 64  # box-head MLP width [1024]
    mask_channels: int = 32  # mask-head conv and upsampling width [256]; the mask head dominates CPU time
    mask_convs: int = 2  # conv layers in the mask head [4]
    anchor_sizes: tuple = (8, 16, 32, 64, 128)  # anchor side per FPN level, pixels after resizing [32..512]
    min_size: int = 160  # shorter image side after resizing [800]; 160-256 px images stay near their size
    max_size: int = 256  # cap on the longer side after resizing [1333]
    rpn_proposals_train: int = 256  # RPN proposals kept per image in training [2000]
    rpn_proposals_test: int = 100  # RPN proposals kept per image at inference [1000]
    box_samples: int = 64  # RoIs sampled per image for the box and mask losses [512]
    detections_per_image: int = 100  # detections kept per image, COCOeval's cap [100]
    epochs: int = 3  # passes over the train images (demo: 3 x 2000 images, about 6 min on a quiet CPU)
    batch_size: int = 4  # images per step
    lr: float = 0.002  # peak learning rate (AdamW; SGD with momentum 0.9 wants about 0.02)
    optimizer: str = "adamw"  # adamw | sgd (AdamW learns faster from scratch in short schedules)
    weight_decay: float = 0.05  # decoupled (AdamW) or L2 (SGD: use about 1e-4) weight decay
    warmup_iters: int = 50  # linear warm-up steps, then cosine decay to zero
    max_images: int | None = None  # train on the first this many images; None = all
    hflip: bool = True  # random horizontal flips while training
    seed: int = 0  # seeds weights init, shuffling and flips
    workers: int = 0  # DataLoader worker processes (0: load in the training process)
    threads: int = 1  # CPU threads while training: 2 were no faster here and up to 10x slower beside other jobs

    def __post_init__(self):
        self.anchor_sizes = tuple(int(s) for s in self.anchor_sizes)
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {BACKBONES}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected 'sgd' or 'adamw'")
        if min(self.epochs, self.batch_size, self.threads) < 1:
            raise ValueError(
                f"epochs, batch_size and threads must be at least 1, got {self.epochs}, {self.batch_size}, {self.threads}"
            )
        if len(self.anchor_sizes) != len(FPN_LEVELS) + 1:
            raise ValueError(
                f"anchor_sizes needs {len(FPN_LEVELS) + 1} sizes (one per FPN level), got {self.anchor_sizes}"
            )

    @classmethod
    def from_dict(cls, values: dict) -> SegmenterConfig:
        """A config from a dict (a checkpoint's or a profile's); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SegmenterConfig field(s) {unknown}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


# Fields that shape the network: a fine-tuned model keeps its initial model's values.
ARCHITECTURE_FIELDS = (
    "backbone",
    "width",
    "fpn_channels",
    "head_channels",
    "mask_channels",
    "mask_convs",
    "anchor_sizes",
)


class SlimResNet(resnet.ResNet):
    """torchvision's ResNet-18/34 (BasicBlocks, trainable batch norm) with stage widths
    ``width * (1, 2, 4, 8)``; ``width=64`` is the standard network."""

    def __init__(self, layers: list[int], width: int):
        super().__init__(resnet.BasicBlock, layers, norm_layer=nn.BatchNorm2d)
        del self.avgpool, self.fc  # classification head unused by the FPN
        if width == 64:
            return
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        for i, layer in enumerate(layers):
            setattr(
                self,
                f"layer{i + 1}",
                self._make_layer(resnet.BasicBlock, width * 2**i, layer, stride=1 if i == 0 else 2),
            )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def build_segmenter(config: SegmenterConfig, num_classes: int) -> MaskRCNN:
    """A randomly initialised Mask R-CNN for ``num_classes`` outputs (background included)."""
    if config.backbone == "resnet50":
        return _resnet50_fpn(config, num_classes)
    trunk = SlimResNet(RESNET_BLOCKS[config.backbone], config.width)
    stage_channels = [trunk.inplanes // 8 * 2**i for i in range(4)]
    backbone = BackboneWithFPN(
        trunk, {f"layer{i + 1}": level for i, level in enumerate(FPN_LEVELS)}, stage_channels, config.fpn_channels
    )
    width, head, mask = config.fpn_channels, config.head_channels, config.mask_channels
    return MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=_anchors(config),
        rpn_head=RPNHead(width, 3),
        box_head=TwoMLPHead(width * 7 * 7, head),
        box_predictor=FastRCNNPredictor(head, num_classes),
        mask_head=MaskRCNNHeads(width, [mask] * config.mask_convs, 1),
        mask_predictor=MaskRCNNPredictor(mask, mask, num_classes),
        **_detector_kwargs(config),
    )


def _resnet50_fpn(config: SegmenterConfig, num_classes: int) -> MaskRCNN:
    """torchvision's ``maskrcnn_resnet50_fpn`` as built when it loads COCO weights (frozen BN)."""
    backbone = resnet_fpn_backbone(
        backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=3
    )
    return MaskRCNN(
        backbone, num_classes=num_classes, rpn_anchor_generator=_anchors(config), **_detector_kwargs(config)
    )


def _anchors(config: SegmenterConfig) -> AnchorGenerator:
    sizes = tuple((s,) for s in config.anchor_sizes)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def _detector_kwargs(config: SegmenterConfig) -> dict:
    return {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "rpn_pre_nms_top_n_train": 2 * config.rpn_proposals_train,
        "rpn_post_nms_top_n_train": config.rpn_proposals_train,
        "rpn_pre_nms_top_n_test": 2 * config.rpn_proposals_test,
        "rpn_post_nms_top_n_test": config.rpn_proposals_test,
        "box_batch_size_per_image": config.box_samples,
        "box_detections_per_img": config.detections_per_image,
    }


def coco_config(**overrides) -> SegmenterConfig:
    """The paper's setting: ResNet-50-FPN at torchvision's COCO sizes and anchors."""
    values = dict(
        backbone="resnet50",
        fpn_channels=256,
        anchor_sizes=(32, 64, 128, 256, 512),
        min_size=800,
        max_size=1333,
        rpn_proposals_train=2000,
        rpn_proposals_test=1000,
        box_samples=512,
        batch_size=2,
        optimizer="sgd",
        lr=0.0025,
        weight_decay=1e-4,  # torchvision's recipe, lr scaled to the batch
    )
    return SegmenterConfig(**{**values, **overrides})


def load_state_dict_file(path: str | Path) -> dict:
    """A state dict from a file, tensors only (``weights_only=True``); a clear error when missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def coco_resnet50_fpn(weights_path: str | Path, config: SegmenterConfig | None = None) -> MaskRCNN:
    """ResNet-50-FPN Mask R-CNN with torchvision's COCO weights read from ``weights_path``.

    The file is the state dict torchvision publishes
    (``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``); labels are COCO category ids.
    """
    config = config or coco_config()
    if config.backbone != "resnet50":
        raise ValueError(f"COCO weights need backbone 'resnet50', the config has {config.backbone!r}")
    model = build_segmenter(config, COCO_NUM_CLASSES)
    state = load_state_dict_file(weights_path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{weights_path}: not torchvision ResNet-50-FPN Mask R-CNN weights ({first})") from None
    return model
