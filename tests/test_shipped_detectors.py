"""Clean detectors shipped with the zoo: exported from a run, installed on a fresh checkout instead of
trained, refused when modified, and trained as before on other data or with other settings."""

from __future__ import annotations

import shutil

import pytest
import torch

from icm_lib.data.layout import DatasetLayout
from icm_lib.errors import UserError
from icm_lib.evaluate.recognition import shipped
from icm_lib.evaluate.recognition.maskrcnn.model import SegmenterConfig
from icm_lib.evaluate.recognition.maskrcnn.train import training_data
from icm_lib.evaluate.recognition.recognizers import MaskRCNNRecognizer, YoloRecognizer
from icm_lib.evaluate.recognition.yolo import MARKER, YoloConfig, training_record
from icm_lib.io import read_json, write_json
from icm_lib.paths import detectors_dir


class WouldTrain(Exception):
    pass


@pytest.fixture
def project(smoke_root, tmp_path, monkeypatch):
    """A copy of the smoke project with a finished clean YOLO and Mask R-CNN on shapes (stand-in weights:
    the plumbing is under test, not the detectors), and a zoo folder of its own; training raises."""
    root = tmp_path / "project"
    shutil.copytree(smoke_root, root, symlinks=True)
    monkeypatch.setenv("ICM_ROOT", str(root))
    monkeypatch.setenv("ICM_ZOO", str(tmp_path / "zoo"))
    layout = DatasetLayout.of("smoke", "shapes")
    yolo = YoloRecognizer(YoloConfig(epochs=2))
    run = detectors_dir("smoke") / "yolo" / "shapes" / "clean"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"trained yolo weights")
    write_json(run / MARKER, training_record(layout.yolo_yaml, yolo.config_for(layout)) | {"seconds": 12.5})
    segmenter = MaskRCNNRecognizer(SegmenterConfig(epochs=1))
    checkpoint = detectors_dir("smoke") / "maskrcnn" / "shapes" / "clean.pt"
    checkpoint.parent.mkdir(parents=True)
    state = {"weight": torch.ones(3)}
    meta = {"finished": True, "data": training_data(layout), "history": [{"epoch": 1, "seconds": 7.0}]}
    torch.save({"state_dict": state, "config": segmenter.config.to_dict(), "meta": meta}, checkpoint)

    def would_train(*args, **kwargs):
        raise WouldTrain

    import ultralytics

    monkeypatch.setattr(ultralytics, "YOLO", would_train)
    monkeypatch.setattr("icm_lib.evaluate.recognition.maskrcnn.train.CocoSegmentationDataset", would_train)
    return layout, yolo, segmenter


def test_a_fresh_checkout_installs_the_shipped_clean_detectors_instead_of_training(project):
    layout, yolo, segmenter = project
    names = shipped.export("smoke", shipped.clean_runs("smoke", ["shapes", "aerial"]))
    assert names == ["maskrcnn-shapes", "yolo-shapes"]
    item = shipped.find("smoke", "yolo", "shapes")
    assert item["seconds"] == 12.5 and item["data"]["fingerprint"] == layout.fingerprint()
    assert shipped.find("smoke", "maskrcnn", "shapes")["seconds"] == 7.0
    shutil.rmtree(detectors_dir("smoke"))  # a fresh checkout: nothing trained here
    weights = yolo.clean(layout, "smoke")
    assert weights.read_bytes() == b"trained yolo weights"
    assert read_json(weights.parent.parent / MARKER)["zoo"] == {"name": "yolo-shapes", "sha256": item["sha256"]}
    assert yolo.clean(layout, "smoke") == weights  # reused from then on, as one trained here
    checkpoint = segmenter.clean(layout, "smoke")
    state = torch.load(checkpoint, weights_only=True)
    assert torch.equal(state["state_dict"]["weight"], torch.ones(3)) and state["meta"]["data"] == training_data(layout)


def test_a_shipped_detector_is_not_used_when_modified_or_made_otherwise(project):
    layout, yolo, segmenter = project
    shipped.export("smoke", shipped.clean_runs("smoke", ["shapes"]))
    shutil.rmtree(detectors_dir("smoke"))
    with pytest.raises(WouldTrain):  # other settings: trained here, as without a zoo
        YoloRecognizer(YoloConfig(epochs=3)).clean(layout, "smoke")
    with pytest.raises(WouldTrain):
        MaskRCNNRecognizer(SegmenterConfig(epochs=2)).clean(layout, "smoke")
    spec = layout.root / "synth.json"
    spec.write_text(spec.read_text().replace('"seed": ', '"seed": 1'))  # data from another spec
    with pytest.raises(WouldTrain):
        yolo.clean(layout, "smoke")
    spec.write_text(spec.read_text().replace('"seed": 1', '"seed": '))
    (shipped.shipped_dir("smoke") / "yolo-shapes.pt").write_bytes(b"tampered")
    with pytest.raises(UserError, match="does not match its manifest"):
        yolo.clean(layout, "smoke")
    assert not (detectors_dir("smoke") / "yolo" / "shapes" / "clean" / "weights" / "last.pt").exists()


def test_the_task_loss_installs_the_shipped_clean_yolo_on_a_fresh_checkout(project):
    """A task-loss codec (Eq. 2) trains through the profile's clean YOLO: on a machine that has only the
    checkout, the shipped one is installed where the loss reads it (notebook 04's settings), not trained."""
    from icm_lib.config import notebook_params
    from icm_lib.evaluate.recognition.curves import RecognitionPlan
    from icm_lib.evaluate.recognition.recognizers import build_recognizers
    from icm_lib.losses import create_criterion
    from icm_lib.task_network import weights_path

    layout, _, _ = project
    plan = RecognitionPlan.from_params(notebook_params("smoke", "04_recognition_accuracy"))
    (yolo,) = build_recognizers(["yolo"], plan.yolo, plan.maskrcnn, plan.finetune_epochs, plan.weights)
    run = detectors_dir("smoke") / "yolo" / "shapes" / "clean"
    write_json(run / MARKER, training_record(layout.yolo_yaml, yolo.config_for(layout)) | {"seconds": 3.0})
    shipped.export("smoke", shipped.clean_runs("smoke", ["shapes"]))
    shutil.rmtree(detectors_dir("smoke"))
    with pytest.raises(UserError, match="cannot be loaded"):  # the stand-in bytes: installed, then read
        create_criterion("task", 0.01, {"profile": "smoke", "dataset": "shapes"})
    assert weights_path("yolo", "smoke", "shapes").read_bytes() == b"trained yolo weights"
