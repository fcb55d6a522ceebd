"""Profiles and the typed config of every pipeline stage, read from ``notebooks/params/<profile>.yaml``.

One file per profile (``smoke`` for tests, ``demo`` for the embedded CPU
miniature, ``paper`` for COCO2017/VisDrone on GPUs). Each top-level key is a
notebook's stem (``01_build_masks`` ...) and holds that stage's settings,
upper-case as in the notebook's ``parameters`` cell.

Each stage has one dataclass here (:class:`MasksStage`, :class:`TrainingStage`,
:class:`CodingStage`, :class:`RecognitionStage`) that documents every setting
once: the profile's section fills it (:meth:`Stage.from_profile`, unknown keys
and wrong types refused), the matching ``icm`` command takes its flags from it
(:meth:`Stage.add_arguments`), and the notebook's parameters cell holds the
settings worth showing, which papermill overwrites and :meth:`Stage.from_namespace`
reads back together with any other setting papermill injected. A field's default
is the demo profile's value, so a notebook run by hand is the demo (a test checks it).
"""

from __future__ import annotations

import argparse
import copy
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import yaml

from icm_lib.paths import params_file

PROFILES = ("smoke", "demo", "paper")


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """Every notebook section of one profile.

    Raises:
        ValueError: the profile is unknown or its file is not a mapping of sections.
    """
    path = params_file(profile)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}: no {path} (known: {', '.join(known)})")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of notebook sections to parameter mappings")
    return data


def notebook_params(profile: str, notebook: str | Path) -> dict[str, Any]:
    """Parameters for one notebook (by stem or path), with ``PROFILE`` set."""
    stem = Path(notebook).stem
    params = dict(load_profile(profile).get(stem, {}))
    params["PROFILE"] = profile
    stage = stage_of(stem)
    if stage is not None:  # a misspelt key or a wrong type is refused before anything runs
        stage.from_profile(profile)
        params.update(stage.implied(params))  # not the parameters cell's value (the demo's) for these
    return params


def stage_of(notebook: str | Path) -> type[Stage] | None:
    """The stage dataclass whose settings a notebook (by stem or path) takes; None for a notebook without one."""
    stem = Path(notebook).stem
    return next((stage for stage in STAGES if stage.NOTEBOOK == stem), None)


def param(default: Any, help: str) -> Any:
    """A stage setting: its default (the demo profile's value) and what it means (the help of its flag)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def fields_of(stage: type) -> set[str]:
    """The setting names of a stage dataclass."""
    return {f.name for f in fields(stage)}


class Stage:
    """What the stage dataclasses share: one YAML section, one notebook, one command's flags."""

    NOTEBOOK: ClassVar[str]  # the notebook's stem, also the profile section's key

    @classmethod
    def _types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls)}

    @classmethod
    def from_params(cls, params: dict[str, Any], strict: bool = True):
        """From upper-case settings (a profile section, notebook parameters).

        Raises:
            ValueError: (``strict``) a key that is no setting of the stage, or a value of the wrong type.
        """
        params = {**cls.implied(params), **params}
        types = cls._types()
        known = {name.upper(): name for name in types}
        unknown = sorted(k for k in params if k not in known)
        if strict and unknown:
            raise ValueError(
                f"{cls.NOTEBOOK}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = {}
        for key, name in known.items():
            if key in params:
                values[name] = _checked(cls.NOTEBOOK, key, params[key], types[name])
        return cls(**values)

    @classmethod
    def implied(cls, params: dict[str, Any], under: dict[str, Any] | None = None) -> dict[str, Any]:
        """Settings that follow from others ``params`` give instead of from what they override: ``under``
        (a profile's section under its flags), else the defaults (none here)."""
        return {}

    @classmethod
    def from_profile(cls, profile: str, **overrides: Any):
        """A profile's section of this stage (``PROFILE`` set), with field-name overrides applied."""
        section = load_profile(profile).get(cls.NOTEBOOK, {})
        given = {k.upper(): v for k, v in overrides.items()}
        params = {**section, "PROFILE": profile, **cls.implied(given, under=section), **given}
        try:
            return cls.from_params(params)
        except ValueError as err:
            raise ValueError(f"{params_file(profile)}: {err}") from None

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]):
        """From a notebook's variables: its parameters cell and whatever papermill injected."""
        return cls.from_params({k: v for k, v in namespace.items() if k.isupper()}, strict=False)

    def to_params(self) -> dict[str, Any]:
        """The settings as upper-case notebook parameters."""
        return {f.name.upper(): copy.deepcopy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        """One ``--flag`` per setting (default: the profile's), its help from the field's documentation."""
        for f in fields(cls):
            if f.name in skip or f.name == "profile":
                continue
            kind, flag = cls._types()[f.name], "--" + f.name.replace("_", "-")
            help = f.metadata.get("help", "") + " (default: the profile's)"
            if kind is bool:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
            elif kind is list:
                sample = f.default_factory()[0] if f.default_factory is not MISSING and f.default_factory() else ""
                parser.add_argument(flag, nargs="*", type=type(sample), default=None, help=help)
            elif kind is dict:
                parser.add_argument(flag, type=_yaml_mapping, default=None, metavar="YAML", help=help)
            else:
                parser.add_argument(flag, type=kind, default=None, help=help)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any):
        """The profile's section with the flags given on the command line applied."""
        given = {
            f.name: getattr(args, f.name)
            for f in fields(cls)
            if f.name != "profile" and getattr(args, f.name, None) is not None
        }
        return cls.from_profile(args.profile, **{**given, **overrides})


def _checked(section: str, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{section}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _yaml_mapping(text: str) -> dict:
    """A flag's YAML mapping, e.g. ``'{N: 64, M: 96}'`` or ``N=64,M=96``."""
    if "=" in text and ":" not in text:
        text = "{" + ", ".join(item.replace("=", ": ", 1) for item in text.split(",") if item) + "}"
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a mapping (e.g. '{{N: 64, M: 96}}' or N=64,M=96)")
    return value


@dataclass
class MasksStage(Stage):
    """Notebook 01 (``icm masks``): the datasets and their object masks of Eq. (3)."""

    NOTEBOOK: ClassVar[str] = "01_build_masks"
    profile: str = param("demo", "smoke | demo | paper (notebooks/params/<profile>.yaml)")
    datasets: list = param(
        ["shapes", "aerial"], "embedded: shapes (COCO stand-in), aerial (VisDrone stand-in); paper: coco, visdrone"
    )
    splits: list = param(["train", "val"], "splits whose masks are built")
    seed: int = param(2023, "seed of the embedded datasets: the same seed gives the same files")
    n_examples: int = param(8, "images shown per dataset in the mask grid")
    stats_split: str = param("val", "split shown and summarised (object areas)")
    rebuild_masks: bool = param(False, "rebuild masks even when they are up to date")


@dataclass
class TrainingStage(Stage):
    """Notebook 02 (``icm train``, ``icm zoo train``): one codec per (registered loss, lambda).

    The defaults are the demo's recipe (the zoo's); the paper's is TCM-large on COCO, lr 1e-4,
    batch 8, 256-pixel crops, object lambdas 0.05-0.005 and MSE lambdas 0.01-0.001.
    """

    NOTEBOOK: ClassVar[str] = "02_train_codecs"
    profile: str = param("demo", "smoke | demo | paper")
    zoo: bool = param(True, "take the trained codecs of zoo/<profile> (false: train them here with this recipe)")
    model: str = param("mbt2018-mean", "icm_lib.models name; paper: tcm-large")
    model_kwargs: dict = param({"N": 64, "M": 96}, "overrides of the model's registry defaults")
    dataset: str = param("shapes", "dataset in data/<profile>/datasets; paper: coco")
    lambdas: dict = param(
        {"object": [0.05, 0.015, 0.005], "mse": [0.01, 0.003, 0.001], "task": [0.01, 0.003, 0.001]},
        "lambdas per registered loss (icm_lib.losses.CRITERIA): object Eq. 4, mse Eq. 1, task Eq. 2",
    )
    loss_kwargs: dict = param(
        {}, "other arguments per loss, e.g. {object: {average: object}}, {task: {network: yolo, task_weight: 1000}}"
    )
    other_models: dict = param(
        {"mbt2018-mean-roi": {"object": [0.05, 0.015, 0.005]}},
        "more codecs of other registered models with the same model_kwargs, "
        "{model: {loss: [lambdas]}}, e.g. the ROI codec {mbt2018-mean-roi: {object: [0.015]}}",
    )
    warm_start: dict = param(
        {
            "mbt2018-mean/object/0.05": {
                "from": "mbt2018-mean/object/0.015",
                "steps": 4000,
                "lr": 1e-3,
                "decay_at": [0.8],
                "val_every": 500,
            },
            "mbt2018-mean-roi/object": {"from": "mbt2018-mean/object", "steps": 1500, "lr": 1e-4, "val_every": 500},
            "mbt2018-mean/task": {"from": "mbt2018-mean/mse", "steps": 1500, "lr": 1e-4, "val_every": 500},
        },
        "codecs fine-tuned from another codec of the recipe instead of trained from scratch: "
        "{model/loss: {from: model/loss, steps: N, lr: L, decay_at: [f]}} from the codec of the same lambda, "
        "e.g. {mbt2018-mean-roi/object: {from: mbt2018-mean/object, steps: 1000, lr: 0.0001}}, or one codec "
        "{model/loss/lambda: {from: model/loss/lambda, ...}}, e.g. "
        "{mbt2018-mean/object/0.05: {from: mbt2018-mean/object/0.015, steps: 4000, lr: 0.001}}",
    )
    grown_from: dict = param(
        {},
        "icm zoo train only: the codecs of model trained from scratch in this recipe start instead from the zoo's "
        "codec of the same loss and lambda under another model, its weights grown into this one on loading, and "
        "go on with their own steps, lr, decay_at (default none) and val_every, e.g. {model: mbt2018-mean, "
        "steps: 7500, lr: 0.0001}; a codec the zoo holds no source of trains from scratch with the recipe",
    )
    steps: int = param(10500, "steps per codec (fine-tuning steps after a base model)")
    lr: float = param(1e-3, "Adam lr of each codec; TCM's recipe: 1e-4")
    aux_lr: float = param(1e-3, "Adam lr of the entropy bottleneck's quantiles")
    batch_size: int = param(16, "images per step over all processes; paper: 8")
    crop_size: int = param(128, "random crop side; paper: 256")
    decay_at: list = param([0.7], "fractions of the steps where the lr drops 10x")
    clip_max_norm: float = param(1.0, "gradient clipping (0: off)")
    checkpoint_every: int = param(500, "steps between atomic checkpoints (a killed run loses at most these)")
    val_every: int = param(1000, "steps between validations (0: only at the end)")
    val_images: int = param(40, "val images of intermediate validations (0: all)")
    final_val_images: int = param(40, "val images of the final validation (0: all)")
    empty_val_images: int = param(8, "object-free val images coded at each validation")
    base_steps: int = param(0, "steps of a shared warm-start model (0: each codec from scratch, as the paper)")
    base_loss: str = param("mse", "loss of the base model")
    base_lambda: float = param(0.003, "lambda of the base model")
    base_lr: float = param(1e-3, "Adam lr of the base model")
    init: str = param("", "checkpoint every codec starts from when base_steps is 0 ('': from scratch)")
    init_official: bool = param(False, "init is an official TCM release checkpoint (LIC_TCM)")
    seed: int = param(0, "seeds the weights, the data order and the crops")
    workers: int = param(0, "DataLoader workers (0 keeps resumption bit-exact)")
    processes: int = param(2, "codecs trained side by side, one thread each (CPU)")
    cache_images: bool = param(False, "keep the decoded training images in memory")
    compute_dtype: str = param(
        "float32", "float32 | bfloat16: the transforms' dtype in training (bfloat16: AMX CPUs, GPUs)"
    )
    time_budget: float = param(0.0, "seconds each codec may train (0: off); steps are then fixed from its speed")

    # MODEL_KWARGS belong to the model they were set with: settings that name another model without its
    # own get that model's registry defaults (the paper profile's tcm-large is N=128, M=320, never the
    # demo's N=64, M=96; `icm train --profile demo --model tcm-tiny` is tcm-tiny's own size).

    @classmethod
    def implied(cls, params: dict[str, Any], under: dict[str, Any] | None = None) -> dict[str, Any]:
        """A ``MODEL`` other than the one it overrides, without ``MODEL_KWARGS``, has none."""
        model = (under or {}).get("MODEL", cls.model)  # the class attribute is the field's default
        if params.get("MODEL", model) != model and "MODEL_KWARGS" not in params:
            return {"MODEL_KWARGS": {}}
        return {}


@dataclass
class CodingStage(Stage):
    """Notebook 03 (``icm code``): every codec on every dataset's split, real bitstreams."""

    NOTEBOOK: ClassVar[str] = "03_coding_examples"
    profile: str = param("demo", "smoke | demo | paper")
    datasets: list = param(["shapes", "aerial"], "every codec codes these (notebook 04 evaluates them)")
    split: str = param("val", "the split coded and shown")
    limit: int = param(0, "code only the first N images of each split (0: all)")
    bitmap_images: int = param(50, "images per learned codec for the share of bits in objects (0: all coded)")
    classical: list = param(["jpeg", "webp", "avif", "heic", "jxl", "vvc"], "anchors; paper: VVC only")
    qualities: dict = param(
        {
            "jpeg": [5, 15, 35],
            "webp": [0, 20, 50],
            "avif": [5, 25, 50],
            "heic": [5, 25, 45],
            "jxl": [5, 25, 50],
            "vvc": [47, 41, 35],
        },
        "quality (VVC: QP) list per anchor",
    )
    n_examples: int = param(4, "images in the coding-examples figure (the paper's Fig. 4 shows 4)")
    object_lambda: float = param(0.0, "object codec shown in the figure (0: the middle lambda)")
    workers: int = param(2, "codecs coded at once, each in its own process (1: in turn)")
    interactive: bool = param(False, "ipywidgets slider in JupyterLab (papermill: false)")


@dataclass
class RecognitionStage(Stage):
    """Notebook 04 (``icm evaluate``): detectors on decoded images, fine-tuning, BD-rate."""

    NOTEBOOK: ClassVar[str] = "04_recognition_accuracy"
    profile: str = param("demo", "smoke | demo | paper")
    datasets: list = param(["shapes", "aerial"], "paper: coco, visdrone")
    detectors: list = param(["yolo", "maskrcnn"], "YOLOv5 and Mask R-CNN (Mask R-CNN only where masks exist)")
    codecs: list = param(["learned", "classical"], "codec selectors: a family, a codec id, learned, classical or all")
    val_images: int = param(0, "score the first N val images; 0: as notebook 03 coded them")
    finetune: bool = param(True, "fine-tune detectors on the decoded train images of each chosen codec")
    finetune_datasets: list = param(["shapes"], "paper: coco")
    finetune_detectors: list = param(["yolo"], "detectors fine-tuned")
    finetune_codecs: list = param(["learned", "best-classical"], "paper: every codec")
    finetune_images: int = param(200, "code and fine-tune on the first N train images; 0: all (paper)")
    finetune_epochs: dict = param({"yolo": 2, "maskrcnn": 1}, "epochs of fine-tuning per detector")
    finetune_seeds: list = param(
        [0], "one fine-tune per seed per codec; the fine-tuned curves are their mean (and each seed's, for the spread)"
    )
    yolo: dict = param(
        {
            "scale": "n",
            "imgsz": 160,
            "epochs": 6,
            "batch": 8,
            "optimizer": "AdamW",
            "lr0": 0.002,
            "close_mosaic": 1,
            "aerial": {"imgsz": 256, "fraction": 400, "epochs": 4},
        },
        "YoloConfig fields; {dataset: {...}} overrides per dataset",
    )
    maskrcnn: dict = param({}, "SegmenterConfig fields: backbone, width, min_size, epochs, max_images, ...")
    weights: dict = param({}, "detector -> {dataset: weights file}; empty: train on the clean train split")
    data_roots: dict = param({}, "raw data folders checked before running (paper profile)")
    bd_min_points: int = param(3, "fewest points a curve needs for a BD-rate (VCEG: 4)")
    bd_drop_dominated: bool = param(True, "drop points a lower-rate point beats, instead of NaN")
    headline: list = param(["shapes", "yolo"], "dataset and detector of the recorded headline numbers")


STAGES = (MasksStage, TrainingStage, CodingStage, RecognitionStage)
