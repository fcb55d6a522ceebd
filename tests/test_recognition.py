"""Orchestration of notebook 04 with a fake recognizer: curves, fine-tuning, caching, BD-rate, figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icm_lib.data.formats import write_coco_json, write_yolo_labels
from icm_lib.data.layout import DatasetLayout
from icm_lib.evaluate.coding.codecs import PillowCodec
from icm_lib.evaluate.recognition.curves import (
    BEST_CLASSICAL,
    RecognitionPlan,
    headline,
    run_recognition,
    validate_paths,
)
from icm_lib.evaluate.recognition.recognizers import Recognizer
from icm_lib.evaluate.recognition.results import read_curves, recognition_dir
from icm_lib.paths import detectors_dir


def _write_split(layout: DatasetLayout, split: str, n: int, rng) -> None:
    images, anns = [], []
    for i in range(n):
        stem = f"{split}{i:03d}"
        image = (rng.random((40, 48, 3)) * 60 + 90).astype(np.uint8)
        image[8:28, 10:30] = rng.integers(0, 255, 3)  # one square object
        layout.images(split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(layout.images(split) / f"{stem}.png")
        mask = np.zeros((40, 48), np.uint8)
        mask[8:28, 10:30] = 255
        layout.masks(split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(layout.masks(split) / f"{stem}.png")
        images.append({"id": i + 1, "file_name": f"{stem}.png", "width": 48, "height": 40})
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [10, 8, 20, 20],
                "area": 400.0,
                "segmentation": [[10, 8, 30, 8, 30, 28, 10, 28]],
                "iscrowd": 0,
            }
        )
    cats = [{"id": 1, "name": "square"}]
    write_coco_json(layout.annotations(split), images, anns, cats)
    write_yolo_labels({"images": images, "annotations": anns, "categories": cats}, layout.labels(split))


@pytest.fixture
def toy_layout(project_root) -> DatasetLayout:
    layout = DatasetLayout.of("smoke", "toy")
    rng = np.random.default_rng(0)
    _write_split(layout, "train", 6, rng)
    _write_split(layout, "val", 5, rng)
    return layout


class NamedJpeg(PillowCodec):
    """JPEG standing in for a learned codec: its identity (not its name) says which loss trained it, and the
    method it is (the loss's, as training labels a codec: Object-MSE, MSE)."""

    def __init__(self, family: str, quality: int, loss: str):
        super().__init__("jpeg", quality)
        self.family, self.loss = family, loss

    @property
    def identity(self) -> dict:
        from icm_lib.losses import CRITERIA

        return {"method": CRITERIA[self.loss].method, "model": "toy", "loss": self.loss, "lmbda": self.quality / 1000}


class FakeRecognizer(Recognizer):
    """Accuracy from the decoded images' PSNR; fine-tuned models score a little higher."""

    name = "fake"
    metric_keys = ("map", "map50")

    def __init__(self):
        self.calls = {"clean": 0, "finetuned": 0, "evaluate": 0}

    def _model(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("weights")
        return path

    def clean(self, layout, profile):
        self.calls["clean"] += 1
        return self._model(detectors_dir(profile) / "fake" / layout.name / "clean.txt")

    def finetuned(self, base, layout, codec_id, train_images, profile, seed=0):
        self.calls["finetuned"] += 1
        assert len(list(Path(train_images).glob("*.png"))) == 4  # finetune_images
        return self._model(detectors_dir(profile) / "fake" / layout.name / "finetuned" / f"{codec_id}-s{seed}.txt")

    def evaluate(self, weights, layout, images_dir, limit):
        self.calls["evaluate"] += 1
        files = layout.image_files("val")[:limit]
        errors = []
        for f in files:
            original = np.asarray(Image.open(f), dtype=float)
            decoded = (
                np.asarray(Image.open(Path(images_dir) / f"{f.stem}.png"), dtype=float) if images_dir else original
            )
            errors.append(np.mean((original - decoded) ** 2))
        psnr = 10 * math.log10(255**2 / max(np.mean(errors), 1e-3))
        score = min(psnr, 60) / 60 + (0.02 if "finetuned" in str(weights) else 0.0)
        seed = Path(weights).stem.rpartition("-s")[2] if "finetuned" in str(weights) else "0"
        score += 0.01 * int(seed) * score  # a seed's fine-tune scores a little apart from another's
        return {"map": score * 0.8, "map50": score}


def _codecs():
    return (
        [NamedJpeg("toy-a", q, "object") for q in (20, 50, 80, 95)]
        + [NamedJpeg("toy-b", q, "mse") for q in (10, 30, 60, 90)]
        + [PillowCodec("jpeg", q) for q in (5, 25, 55, 85)]
        + [PillowCodec("webp", q) for q in (5, 25, 55, 85)]
    )


def test_orchestration_with_fake_recognizer(toy_layout, monkeypatch):
    import icm_lib.evaluate.coding.sweep as coding

    monkeypatch.setattr(
        coding, "all_codecs", lambda profile, classical=None, qualities=None: (_codecs(), ["vvc: not here"])
    )
    plan = RecognitionPlan(
        datasets=["toy"],
        detectors=["fake"],
        codecs=["all"],
        classical=["jpeg", "webp"],
        qualities={},
        val_images=4,
        finetune=True,
        finetune_datasets=["toy"],
        finetune_detectors=["fake"],
        finetune_codecs=["toy-a", "toy-b", BEST_CLASSICAL],
        finetune_images=4,
    )
    fake = FakeRecognizer()
    summary = run_recognition(plan, "smoke", [fake])
    folder = recognition_dir("smoke", "toy", "fake")
    assert summary["toy"]["fake"]["folder"] == folder
    curves = read_curves(folder)
    assert {"toy-a (pretrained)", "jpeg (pretrained)", "webp (pretrained)", "toy-a (finetuned)"} <= set(curves)
    finetuned_classical = {n for n in curves if n.endswith("(finetuned)") and n.split(" (")[0] in ("jpeg", "webp")}
    assert len(finetuned_classical) == 1  # only the best classical family is fine-tuned
    body = curves["toy-a (pretrained)"]
    assert body["results"]["bpp"] == sorted(body["results"]["bpp"]) and len(body["results"]["map"]) == 4
    assert "real bitstream" in body["description"]
    assert fake.calls["finetuned"] == 12
    assert "map_by_seed" not in curves["toy-a (finetuned)"]["results"]  # one seed: nothing to spread
    assert curves["toy-a (finetuned)"]["seeds"] == [0]
    table = json.loads((folder / "bdrate_map.json").read_text())
    assert table["rows"][0] == "toy-a (finetuned)"
    assert "| toy-a (finetuned) |" in (folder / "bdrate_map.md").read_text()
    numbers = headline("smoke", "toy", "fake")
    assert numbers["mode"] == "finetuned"
    assert math.isfinite(numbers["uncompressed_map"]) and numbers["best_classical"] in {
        "jpeg (finetuned)",
        "webp (finetuned)",
    }
    # a second run reuses every score and model
    evaluations = fake.calls["evaluate"]
    run_recognition(plan, "smoke", [fake])
    assert fake.calls["evaluate"] == evaluations


def test_headline_of_a_detector_scored_only_pretrained_compares_the_pretrained_curves(toy_layout, monkeypatch):
    """A detector without fine-tuning (the demo's Mask R-CNN): the headline says so and gives its BD-rates."""
    import icm_lib.evaluate.coding.sweep as coding

    monkeypatch.setattr(coding, "all_codecs", lambda profile, classical=None, qualities=None: (_codecs(), []))
    plan = RecognitionPlan(
        datasets=["toy"], detectors=["fake"], codecs=["all"], classical=[], qualities={}, val_images=4, finetune=False
    )
    run_recognition(plan, "smoke", [FakeRecognizer()])
    numbers = headline("smoke", "toy", "fake")
    assert numbers["mode"] == "pretrained" and numbers["best_classical"] in {"jpeg (pretrained)", "webp (pretrained)"}
    assert math.isfinite(numbers["bd_rate_vs_mse"]) and math.isfinite(numbers["bd_rate_vs_best_classical"])
    assert math.isnan(numbers["recovered_fraction"])  # nothing was fine-tuned
    assert math.isnan(headline("smoke", "toy", "fake", mode="finetuned")["bd_rate_vs_mse"])
    with pytest.raises(ValueError, match="mode must be one of pretrained, finetuned"):
        headline("smoke", "toy", "fake", mode="tuned")


def test_finetune_seeds_give_the_mean_curve_and_each_seeds_bd_rate(toy_layout, monkeypatch):
    import icm_lib.evaluate.coding.sweep as coding

    monkeypatch.setattr(coding, "all_codecs", lambda profile, classical=None, qualities=None: (_codecs()[:8], []))
    plan = RecognitionPlan(
        datasets=["toy"],
        detectors=["fake"],
        codecs=["all"],
        classical=[],
        qualities={},
        val_images=4,
        finetune_datasets=["toy"],
        finetune_detectors=["fake"],
        finetune_codecs=["toy-a", "toy-b"],
        finetune_images=4,
        finetune_seeds=[0, 5],
        bd_min_points=3,
    )
    fake = FakeRecognizer()
    run_recognition(plan, "smoke", [fake])
    assert fake.calls["finetuned"] == 16  # 8 codecs, 2 seeds each
    folder = recognition_dir("smoke", "toy", "fake")
    body = read_curves(folder)["toy-a (finetuned)"]
    assert body["seeds"] == [0, 5]
    res = body["results"]
    for mean, (first, second) in zip(res["map"], res["map_by_seed"]):
        assert second == pytest.approx(first * 1.05)  # seed 5 scores 5 % higher
        assert mean == pytest.approx((first + second) / 2)
    numbers = headline("smoke", "toy", "fake")
    assert len(numbers["bd_rate_vs_mse_by_seed"]) == 2 and all(
        math.isfinite(v) for v in numbers["bd_rate_vs_mse_by_seed"]
    )
    assert "bd_rate_vs_best_classical_by_seed" not in numbers  # no classical curve was fine-tuned
    from icm_lib.plots.recognition import plot_map_vs_bpp

    fig = plot_map_vs_bpp(folder, ("map",))
    assert "mean of 2 seeds" in fig.axes[1].get_title() and "seeds" not in fig.axes[0].get_title()


@pytest.mark.parametrize("seeds", [[], [0, 0], [-1], "0", [1.5]])
def test_finetune_seeds_are_checked(seeds):
    from icm_lib.errors import UserError

    with pytest.raises(UserError, match="finetune_seeds"):
        RecognitionPlan(finetune_seeds=seeds)


def test_figure_from_results(toy_layout, monkeypatch, project_root):
    import icm_lib.evaluate.coding.sweep as coding
    from icm_lib.plots import save_figure
    from icm_lib.plots.recognition import plot_map_vs_bpp

    monkeypatch.setattr(coding, "all_codecs", lambda profile, classical=None, qualities=None: (_codecs()[:8], []))
    plan = RecognitionPlan(datasets=["toy"], codecs=["all"], classical=[], qualities={}, val_images=3, finetune=False)
    run_recognition(plan, "smoke", [FakeRecognizer()])
    fig = plot_map_vs_bpp(recognition_dir("smoke", "toy", "fake"), ("map", "segm_map"), title="toy")
    assert len(fig.axes) == 1  # one metric present, pre-trained only
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert set(labels) == {"toy-a", "toy-b", "uncompressed"}
    colours = {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()}
    assert (colours["toy-a"], colours["toy-b"]) == ("#d62728", "#1f77b4")  # styled by the method the curve records
    paths = save_figure(fig, "map_vs_bpp_toy_fake")
    assert all(p.is_file() for p in paths) and paths[0].parent == project_root / "figures"


def test_plan_from_params_and_missing_paths(project_root):
    plan = RecognitionPlan.from_params(
        {
            "PROFILE": "smoke",
            "DATASETS": ["toy"],
            "FINETUNE": False,
            "WEIGHTS": {"yolo": {"toy": str(project_root / "nope.pt")}},
        }
    )
    assert plan.datasets == ["toy"] and plan.finetune is False
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        validate_paths(plan, "smoke")
    plan.weights = {}
    with pytest.raises(FileNotFoundError, match="instances_val.json"):
        validate_paths(plan, "smoke")
    with pytest.raises(FileNotFoundError, match="/data/coco"):
        validate_paths(plan, "smoke", {"coco": "/data/coco"})


def test_maskrcnn_adapter_maps_scores_and_checks_the_subset(toy_layout, monkeypatch, tmp_path):
    import icm_lib.evaluate.recognition.maskrcnn.train as segmentation
    from icm_lib.evaluate.recognition.maskrcnn.train import SegmenterConfig
    from icm_lib.evaluate.recognition.recognizers import MaskRCNNRecognizer

    scores = {"bbox_map": 0.4, "bbox_map50": 0.6, "segm_map": 0.3, "segm_map50": 0.5}
    monkeypatch.setattr(segmentation, "evaluate_segmenter", lambda *args, **kwargs: scores)
    calls = []
    monkeypatch.setattr(
        segmentation, "train_segmenter", lambda layout, out, config, **kw: calls.append((config, kw)) or out
    )
    recognizer = MaskRCNNRecognizer(SegmenterConfig(epochs=3, lr=0.01), finetune_epochs=1)
    assert recognizer.supports(toy_layout)
    assert recognizer.evaluate(tmp_path / "m.pt", toy_layout, None, 3) == {
        "map": 0.4,
        "map50": 0.6,
        "segm_map": 0.3,
        "segm_map50": 0.5,
    }
    decoded = tmp_path / "decoded" / "images" / "train"
    decoded.mkdir(parents=True)
    for stem in ("train000", "train001"):
        (decoded / f"{stem}.png").write_bytes(b"")
    recognizer.finetuned(tmp_path / "clean.pt", toy_layout, "jpeg@q10", decoded, "smoke")
    config, kwargs = calls[-1]
    assert (config.epochs, config.max_images, config.lr) == (1, 2, pytest.approx(0.001))
    assert kwargs == {"images_dir": decoded, "init": tmp_path / "clean.pt"}
    (decoded / "train000.png").unlink()
    (decoded / "train005.png").write_bytes(b"")
    with pytest.raises(ValueError, match="not the first 2 by image id"):
        recognizer.finetuned(tmp_path / "clean.pt", toy_layout, "jpeg@q10", decoded, "smoke")
