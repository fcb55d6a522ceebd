"""Machine evaluation end to end: detectors on decoded images, fine-tuning, BD-rate (Sec. 4).

Shindo et al. score each codec by the accuracy of YOLOv5 and Mask R-CNN on its
decoded COCO2017 val (and VisDrone) images against the bits per pixel, with the
detectors used as trained on clean images ("pre-trained") and fine-tuned on the
codec's decoded train images ("fine-tuned"), and summarise the curves by
BD-rate. :func:`run_recognition` does that for every dataset, detector and
codec of a :class:`RecognitionPlan`:

1. the clean detector (trained here on the clean train split and cached, or the
   user's weights) is scored on the original val images and on each codec's
   decoded val images (coded by :func:`icm_lib.evaluate.coding.sweep.code_split`,
   reused when notebook 03 already coded them);
2. for the codecs chosen for fine-tuning, the first ``finetune_images`` train
   images are coded with that codec, the clean detector is fine-tuned on them
   and scored on the same codec's decoded val images;
3. BD-rate tables compare every curve with every other.

Deviation (demo profile): fine-tuning uses a subset of the train images, a few
epochs and only some codec families (the learned ones and the strongest
classical one by default), to fit the CPU budget; the paper fine-tunes on all
of COCO-Train for every codec. ``icm evaluate --profile P`` runs the same plan
as notebook 04.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tqdm.auto import tqdm

from icm_lib.config import RecognitionStage
from icm_lib.data.layout import DatasetLayout
from icm_lib.errors import UserError
from icm_lib.evaluate.coding import sweep as coding_sweep
from icm_lib.evaluate.coding.codecs import BASELINE_METHOD, PAPER_METHOD
from icm_lib.evaluate.recognition import results as rr
from icm_lib.evaluate.recognition.recognizers import Recognizer, build_recognizers

STEM = "04_recognition_accuracy"  # the notebook whose profile section holds the plan
BEST_CLASSICAL = (
    "best-classical"  # finetune selector: the strongest classical family, chosen from the pre-trained curves
)


@dataclass
class RecognitionPlan:
    """What notebook 04 evaluates; built from its parameters cell by :meth:`from_params`."""

    datasets: list = field(default_factory=lambda: ["shapes", "aerial"])  # embedded: shapes (COCO), aerial (VisDrone)
    detectors: list = field(default_factory=lambda: ["yolo", "maskrcnn"])  # yolo and/or maskrcnn
    codecs: list = field(
        default_factory=lambda: ["learned", "classical"]
    )  # codec selectors (family, id, learned, classical, all)
    classical: list | None = None  # anchor families to build (None: notebook 03's CLASSICAL)
    qualities: dict | None = None  # quality list per anchor family (None: notebook 03's QUALITIES)
    val_images: int | None = None  # score the first N val images by name (None: notebook 03's LIMIT, 0 = all)
    finetune: bool = True  # fine-tune detectors on decoded train images
    finetune_datasets: list = field(default_factory=lambda: ["shapes"])  # datasets whose detectors are fine-tuned
    finetune_detectors: list = field(default_factory=lambda: ["yolo", "maskrcnn"])  # detectors fine-tuned
    finetune_codecs: list = field(
        default_factory=lambda: ["learned", BEST_CLASSICAL]
    )  # codec selectors, or best-classical
    finetune_images: int | None = None  # code and fine-tune on the first N train images (None: all)
    workers: int | None = None  # codecs coding those train images at once (None: 1)
    finetune_epochs: dict = field(default_factory=lambda: {"yolo": 3, "maskrcnn": 2})  # epochs per detector
    finetune_seeds: list = field(default_factory=lambda: [0])  # one fine-tune per seed; the curves: their mean
    yolo: dict = field(default_factory=dict)  # YoloConfig overrides (scale, imgsz, epochs, batch, ...)
    maskrcnn: dict = field(default_factory=dict)  # SegmenterConfig overrides
    weights: dict = field(default_factory=dict)  # detector -> {dataset: weights file} (paper profile)
    bd_min_points: int = 4  # fewest points a curve needs for a BD-rate (VCEG: 4)
    bd_drop_dominated: bool = False  # drop points a lower-rate point beats instead of giving NaN

    @classmethod
    def from_params(cls, params: dict) -> RecognitionPlan:
        """From a notebook's parameters (UPPER_CASE keys; unknown keys such as PROFILE ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k.lower(): v for k, v in params.items() if k.lower() in names}
        for key in ("val_images", "finetune_images"):  # 0 in a profile or notebook: as notebook 03 / all
            values[key] = values.get(key) or None
        return cls(**values)

    def __post_init__(self):
        seeds = self.finetune_seeds
        if (
            not isinstance(seeds, (list, tuple))
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            raise UserError(f"finetune_seeds must be a non-empty list of distinct integers >= 0, got {seeds!r}")

    def resolved(self, profile: str) -> RecognitionPlan:
        """A copy with the coding settings left None taken from what notebook 03 (or ``icm code``) recorded
        it coded, so both stages score the very same decoded images.

        Raises:
            FileNotFoundError: a setting is left to notebook 03 and it has not recorded one.
        """

        from icm_lib.notebook import read_record

        coding = {}
        if self.classical is None or self.qualities is None or self.val_images is None:
            coding = read_record("03_coding_examples", profile).get("config", {})
        limit = self.val_images if self.val_images is not None else (coding.get("LIMIT") or None)
        return replace(
            self,
            classical=self.classical if self.classical is not None else coding.get("CLASSICAL"),
            qualities=self.qualities if self.qualities is not None else coding.get("QUALITIES"),
            val_images=limit or None,
            workers=self.workers or 1,
        )


def validate_paths(plan: RecognitionPlan, profile: str, data_roots: dict | None = None) -> None:
    """Check every input path of a plan before any work: the datasets in the shared layout,
    the user's weights files and (paper profile) the raw data roots.

    Raises:
        FileNotFoundError: naming the first missing path and what to do about it.
    """
    for name, root in (data_roots or {}).items():
        if not Path(root).expanduser().exists():
            raise FileNotFoundError(
                f"{name} data root {root} does not exist: edit DATA_ROOTS in notebooks/params/{profile}.yaml"
            )
    for detector, per_dataset in (plan.weights or {}).items():
        for dataset, path in (per_dataset or {}).items():
            if path and not Path(path).expanduser().is_file():
                raise FileNotFoundError(
                    f"{detector} weights for {dataset}: no file {path} "
                    f"(edit WEIGHTS in notebooks/params/{profile}.yaml)"
                )
    for dataset in plan.datasets:
        layout = DatasetLayout.of(profile, dataset)
        for path in (layout.annotations("val"), layout.images("val")):
            if not path.exists():
                raise FileNotFoundError(
                    f"dataset {dataset!r} of profile {profile}: missing {path} "
                    "(run notebook 01, or import the data with `icm data ...`)"
                )


class ScoreCache:
    """Scores already computed, keyed by model file and image folder (with their modification times)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.scores = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}

    def score(
        self, recognizer: Recognizer, weights: Path, layout: DatasetLayout, images_dir: Path | None, limit: int | None
    ) -> dict:
        folder = images_dir if images_dir is not None else layout.images("val")
        key = f"{weights}@{os.stat(weights).st_mtime_ns}|{folder}@{os.stat(folder).st_mtime_ns}|{limit}"
        if key not in self.scores:
            self.scores[key] = recognizer.evaluate(weights, layout, images_dir, limit)
            rr.write_json(self.path, self.scores)
        return {k: (float("nan") if v is None else v) for k, v in self.scores[key].items()}


def _codec_images(payload: dict, profile: str, dataset: str, split: str) -> Path:
    return coding_sweep.codec_dir(profile, dataset, payload["codec"]) / "images" / split


def pretrained_curves(
    recognizer: Recognizer,
    base: Path,
    layout: DatasetLayout,
    codecs: list,
    plan: RecognitionPlan,
    profile: str,
    cache: ScoreCache,
) -> dict[str, list[dict]]:
    """Step 1: the clean detector on every codec's decoded val images; rows per family."""
    rows: dict[str, list[dict]] = {}
    for codec in tqdm(codecs, desc=f"{layout.name}/{recognizer.name} pre-trained", unit="codec"):
        payload = coding_sweep.code_split(codec, layout, "val", profile, plan.val_images)
        scores = cache.score(
            recognizer, base, layout, _codec_images(payload, profile, layout.name, "val"), plan.val_images
        )
        rows.setdefault(codec.family, []).append({"codec_id": codec.id, "bpp": payload["mean"]["bpp"], **scores})
    return rows


def finetune_selection(codecs: list, selectors: list[str], folder: Path, plan: RecognitionPlan) -> list:
    """Codecs to fine-tune: the selectors, with ``best-classical`` resolved from the pre-trained curves
    (the classical family the object codec saves the fewest bits against; without a computable BD-rate,
    the classical family of highest mean mAP)."""
    chosen = coding_sweep.select_codecs(codecs, [s for s in selectors if s != BEST_CLASSICAL])
    if BEST_CLASSICAL in selectors:
        tables = rr.bd_rate_tables(folder, ("map",), plan.bd_min_points, plan.bd_drop_dominated)
        best = rr.best_classical(tables["map"], "pretrained") if tables else None
        best = best or rr.most_accurate_classical(folder, "pretrained")
        if best is not None:
            family = best.split(" (")[0]
            chosen += [c for c in codecs if c.family == family and c not in chosen]
    return chosen


def finetuned_curves(
    recognizer: Recognizer,
    base: Path,
    layout: DatasetLayout,
    codecs: list,
    plan: RecognitionPlan,
    profile: str,
    cache: ScoreCache,
) -> dict[str, list[dict]]:
    """Step 2: fine-tune on each codec's decoded train subset, score on its decoded val images.

    The train subsets are coded first, ``plan.workers`` codecs at once. With several
    ``plan.finetune_seeds`` each codec is fine-tuned once per seed: a point's scores are their mean,
    and ``<metric>_by_seed`` holds each seed's, in the order of the seeds."""
    trains = coding_sweep.code_codecs(
        codecs, profile, layout.name, "train", plan.finetune_images, workers=plan.workers or 1
    )
    seeds = list(plan.finetune_seeds)
    rows: dict[str, list[dict]] = {}
    for codec, train in tqdm(
        zip(codecs, trains), total=len(codecs), desc=f"{layout.name}/{recognizer.name} fine-tuning", unit="codec"
    ):
        val = coding_sweep.code_split(codec, layout, "val", profile, plan.val_images)
        by_seed = []
        for seed in seeds:
            tuned = recognizer.finetuned(
                base, layout, codec.id, _codec_images(train, profile, layout.name, "train"), profile, seed=seed
            )
            by_seed.append(
                cache.score(recognizer, tuned, layout, _codec_images(val, profile, layout.name, "val"), plan.val_images)
            )
        row = {"codec_id": codec.id, "bpp": val["mean"]["bpp"], **_mean_scores(by_seed)}
        if len(seeds) > 1:
            row |= {f"{k}_by_seed": [s[k] for s in by_seed] for k in by_seed[0]}
        rows.setdefault(codec.family, []).append(row)
    return rows


def _mean_scores(by_seed: list[dict]) -> dict:
    """Each metric's mean over the seeds' scores (NaN when a seed has none)."""
    return {k: sum(s[k] for s in by_seed) / len(by_seed) for k in by_seed[0]}


def evaluate_dataset(
    recognizer: Recognizer, layout: DatasetLayout, codecs: list, plan: RecognitionPlan, profile: str
) -> dict:
    """Steps 1-3 for one dataset and recognizer; returns timings and the results folder."""
    folder = rr.recognition_dir(profile, layout.name, recognizer.name)
    cache = ScoreCache(folder / "evaluations.json")
    timings, start = {}, time.perf_counter()
    base = recognizer.clean(layout, profile)
    timings["train_s"] = time.perf_counter() - start
    rr.write_uncompressed(
        folder, recognizer.name, cache.score(recognizer, base, layout, None, plan.val_images), plan.val_images
    )
    identities = {c.family: c.identity for c in codecs}
    for family, rows in pretrained_curves(recognizer, base, layout, codecs, plan, profile, cache).items():
        rr.write_curve(folder, family, "pretrained", recognizer.name, rows, plan.val_images, identities[family])
    timings["pretrained_s"] = time.perf_counter() - start - timings["train_s"]
    if plan.finetune and layout.name in plan.finetune_datasets and recognizer.name in plan.finetune_detectors:
        chosen = finetune_selection(codecs, plan.finetune_codecs, folder, plan)
        for family, rows in finetuned_curves(recognizer, base, layout, chosen, plan, profile, cache).items():
            rr.write_curve(
                folder,
                family,
                "finetuned",
                recognizer.name,
                rows,
                plan.val_images,
                identities[family],
                seeds=plan.finetune_seeds,
            )
        timings["finetune_s"] = time.perf_counter() - start - timings["train_s"] - timings["pretrained_s"]
    metrics = tuple(k for k in recognizer.metric_keys if not k.endswith("50"))
    rr.bd_rate_tables(folder, metrics, plan.bd_min_points, plan.bd_drop_dominated)
    return {"folder": folder, **{k: round(v, 1) for k, v in timings.items()}}


def run_recognition(plan: RecognitionPlan, profile: str, recognizers: list[Recognizer] | None = None) -> dict:
    """Every dataset x detector of the plan; returns ``{dataset: {detector: timings}}``."""
    recognizers = (
        recognizers
        if recognizers is not None
        else build_recognizers(plan.detectors, plan.yolo, plan.maskrcnn, plan.finetune_epochs, plan.weights)
    )
    plan = plan.resolved(profile)
    available, skipped = coding_sweep.all_codecs(profile, plan.classical, plan.qualities)
    codecs = coding_sweep.select_codecs(available, plan.codecs)
    if not codecs:
        raise ValueError(f"no codec matches {plan.codecs}: train codecs (notebook 02) or name available families")
    summary: dict = {"skipped_codecs": list(skipped)}
    for dataset in plan.datasets:
        layout = DatasetLayout.of(profile, dataset)
        for recognizer in recognizers:
            if recognizer.supports(layout):
                summary.setdefault(dataset, {})[recognizer.name] = evaluate_dataset(
                    recognizer, layout, codecs, plan, profile
                )
    return summary


def headline(profile: str, dataset: str, detector: str, mode: str | None = None) -> dict:
    """The paper's claims in numbers for one dataset and detector (bbox mAP).

    Args:
        mode: whose curves to compare, ``"finetuned"`` or ``"pretrained"`` detectors; None: the fine-tuned
            ones where the object codec has them, else the pre-trained ones (a detector or dataset scored
            without fine-tuning, e.g. the demo's Mask R-CNN).
    Returns:
        ``mode``; ``bd_rate_vs_mse`` and ``bd_rate_vs_best_classical`` (object codec, ``mode`` curves, %),
        ``best_classical``, ``recovered_fraction`` and the uncompressed ``map`` / ``map50``; with
        detectors fine-tuned with several seeds, ``bd_rate_vs_mse_by_seed`` and
        ``bd_rate_vs_best_classical_by_seed`` (each seed's curves alone; the values above compare the
        curves of the seeds' mean).
    """
    import math

    folder = rr.recognition_dir(profile, dataset, detector)
    table = rr.read_table(folder)
    result = {"bd_rate_vs_mse": math.nan, "bd_rate_vs_best_classical": math.nan, "best_classical": None}
    if mode is not None and mode not in rr.MODES:
        raise ValueError(f"mode must be one of {', '.join(rr.MODES)} (or None), got {mode!r}")
    if table:
        methods = rr.table_methods(table, folder)
        if mode is None:
            tuned = rr.method_curve(table["rows"], methods, PAPER_METHOD, "finetuned")
            mode = "finetuned" if tuned else "pretrained"
        anchor = rr.method_curve(table["rows"], methods, PAPER_METHOD, mode)
        mse = rr.method_curve(table["columns"], methods, BASELINE_METHOD, mode)
        best = rr.best_classical(table, mode, methods)
        if anchor:
            result.update(
                bd_rate_vs_mse=rr.table_value(table, anchor, mse or ""),
                best_classical=best,
                bd_rate_vs_best_classical=rr.table_value(table, anchor, best or ""),
            )
            for key, other in (("bd_rate_vs_mse_by_seed", mse), ("bd_rate_vs_best_classical_by_seed", best)):
                if by_seed := rr.seed_bd_rates(folder, table, anchor, other or ""):
                    result[key] = by_seed
    clean = rr.read_uncompressed(folder)
    return {
        "mode": mode,
        **result,
        "recovered_fraction": rr.recovered_fraction(folder),
        "uncompressed_map": clean.get("map", math.nan),
        "uncompressed_map50": clean.get("map50", math.nan),
    }


def compared_methods(profile: str, dataset: str, detector: str) -> dict[str, dict]:
    """The other compared methods against the paper's codec (Object-MSE), for one dataset and detector.

    Per method (``ROI, Object-MSE``, ``task loss`` ...): ``object_bd_psnr`` and ``background_bd_psnr``
    (dB at equal bpp over the coded split, from notebook 03's results; positive: the method is better
    there; NaN without them) and ``bd_rate_<mode>`` (% bits at equal bbox mAP against Object-MSE, from the BD-rate table;
    negative: the method needs fewer bits). NaN where a curve is missing or the curves do not overlap.
    """
    import math

    from icm_lib.evaluate.coding.codecs import codec_identity
    from icm_lib.metrics import bd_psnr

    coded = {
        f: (codec_identity(b), b["results"]) for f, b in coding_sweep.read_family_results(profile, dataset).items()
    }
    by_method = {i["method"]: r for i, r in coded.values() if i["loss"] is not None}
    folder = rr.recognition_dir(profile, dataset, detector)
    table = rr.read_table(folder) or {"rows": [], "columns": []}
    methods = rr.table_methods(table, folder) if table["rows"] else {}
    out = {}
    found = {*by_method, *methods.values()} - {None, PAPER_METHOD, BASELINE_METHOD}
    for method in sorted(found):
        row = {
            f"{region}_bd_psnr": bd_psnr(by_method[PAPER_METHOD], by_method[method], f"{region}_psnr")
            if PAPER_METHOD in by_method and method in by_method
            else math.nan
            for region in ("object", "background")
        }
        for mode in rr.MODES:
            mine = rr.method_curve(table["rows"], methods, method, mode)
            paper = rr.method_curve(table["columns"], methods, PAPER_METHOD, mode)
            row[f"bd_rate_{mode}"] = rr.table_value(table, mine or "", paper or "")
        out[method] = row
    return out


def run_stage(profile: str, stage: RecognitionStage) -> tuple[RecognitionPlan, dict]:
    """What ``icm evaluate`` runs: notebook 04's plan from a :class:`RecognitionStage`, its paths checked first.

    Raises:
        FileNotFoundError: a missing input path, before any work.
        ValueError: no codec matches the plan.
    """
    plan = RecognitionPlan.from_params(stage.to_params())
    validate_paths(plan, profile, stage.data_roots)
    return plan, run_recognition(plan, profile)
