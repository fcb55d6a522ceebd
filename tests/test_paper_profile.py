"""The paper profile of notebook 04: its parameters load into a plan, and missing data paths are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from icm_lib.cli import main
from icm_lib.config import notebook_params
from icm_lib.evaluate.recognition.curves import RecognitionPlan, validate_paths
from icm_lib.evaluate.recognition.recognizers import build_recognizers

STEM = "04_recognition_accuracy"


def test_paper_parameters_describe_the_paper(project_root):
    params = notebook_params("paper", STEM)
    plan = RecognitionPlan.from_params(params)
    assert plan.datasets == ["coco", "visdrone"] and set(plan.detectors) == {"yolo", "maskrcnn"}
    assert "tcm-large-object" in plan.codecs and "tcm-large-mse" in plan.codecs
    assert plan.finetune and not plan.finetune_images  # every train image
    with pytest.raises(FileNotFoundError, match="run notebook 03_coding_examples at profile paper first"):
        plan.resolved("paper")  # what notebook 03 coded comes from its record, not from its profile section
    from icm_lib.config import CodingStage
    from icm_lib.evaluate.coding.sweep import coding_record
    from icm_lib.notebook import record

    record("03_coding_examples", "paper", coding_record(CodingStage.from_profile("paper"), [], []))
    resolved = plan.resolved("paper")
    assert "vvc" in resolved.classical  # the paper's anchor, as notebook 03 recorded it
    yolo, maskrcnn = build_recognizers(plan.detectors, plan.yolo, plan.maskrcnn, plan.finetune_epochs, plan.weights)
    assert yolo.config.imgsz == 640 and maskrcnn.config.backbone == "resnet50"
    assert set(params["DATA_ROOTS"]) == {"coco", "visdrone"}


def test_missing_paper_paths_are_named(project_root):
    params = notebook_params("paper", STEM)
    plan = RecognitionPlan.from_params(params)
    missing = [p for p in params["DATA_ROOTS"].values() if not Path(p).exists()]
    if not missing:
        pytest.skip("this machine has the paper's data roots")
    with pytest.raises(FileNotFoundError, match=missing[0]):
        validate_paths(plan, "paper", params["DATA_ROOTS"])


def test_missing_weights_and_layout_are_named(project_root, tmp_path):
    params = notebook_params("paper", STEM)
    plan = RecognitionPlan.from_params(params)
    roots = {name: str(tmp_path) for name in params["DATA_ROOTS"]}  # pretend the raw data is there
    weights = plan.weights["yolo"]["coco"]
    if not Path(weights).exists():
        with pytest.raises(FileNotFoundError, match=f"yolo weights for coco: no file {weights}"):
            validate_paths(plan, "paper", roots)
    plan.weights = {}
    with pytest.raises(FileNotFoundError, match=r"dataset 'coco' of profile paper: missing .*instances_val.json"):
        validate_paths(plan, "paper", roots)


def test_cli_reports_the_missing_path_in_one_line(project_root, capsys):
    params = notebook_params("paper", STEM)
    if all(Path(p).exists() for p in params["DATA_ROOTS"].values()):
        pytest.skip("this machine has the paper's data roots")
    assert main(["evaluate", "--profile", "paper"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("icm: error:") and "\n" not in err and "does not exist" in err
