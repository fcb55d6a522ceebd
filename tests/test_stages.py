"""One typed config per pipeline stage: the profiles fill it, the notebooks' parameters cells mirror the demo's,
the commands take their flags from it, and a misspelt key or a wrong type is refused in one line."""

from __future__ import annotations

import ast
import json

import pytest

from conftest import REPO
from icm_lib.config import PROFILES, STAGES, Stage, TrainingStage, notebook_params

MAX_PARAMETER_LINES = 15  # STYLE.md: a cell longer than about 15 lines belongs in the library


def parameters_cell(stage: type[Stage]) -> str:
    nb = json.loads((REPO / "notebooks" / f"{stage.NOTEBOOK}.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.NOTEBOOK)
def test_a_notebook_run_by_hand_is_the_demo(stage):
    """The parameters cell's own values, with the stage's defaults for the rest, are the demo profile's."""
    namespace: dict = {}
    exec(compile(parameters_cell(stage), stage.NOTEBOOK, "exec"), namespace)
    assert stage.from_namespace(namespace) == stage.from_profile("demo")


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.NOTEBOOK)
def test_parameters_cells_are_short_typed_literals(stage):
    source = parameters_cell(stage)
    assert len(source.splitlines()) <= MAX_PARAMETER_LINES
    fields = {name.upper() for name in stage._types()}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name), ast.unparse(node)
        assert node.target.id in fields, f"{node.target.id} is no setting of {stage.__name__}"
        ast.literal_eval(node.value)  # a literal, nothing computed


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_section_fills_its_stage(profile):
    for stage in STAGES:
        assert stage.from_profile(profile).profile == profile


def test_the_paper_profile_trains_the_papers_tcm_large_not_a_demo_sized_one(project_root):
    """A model named without its MODEL_KWARGS is built with its own defaults: the demo's N=64, M=96 once
    leaked into the paper profile and made tcm-large a 29-million-parameter TCM (the published one has 76.6)."""
    from icm_lib.models import create, parameter_count
    from icm_lib.training.sweep import sweep_configs

    _, runs = sweep_configs(TrainingStage.from_profile("paper"))
    assert {(r.model, tuple(r.model_kwargs)) for r in runs} == {("tcm-large", ())}
    assert parameter_count(create("tcm-large", **runs[0].model_kwargs)) == 76_568_148
    assert TrainingStage.from_params({"MODEL": "tcm-small"}).model_kwargs == {}
    assert TrainingStage.from_params({"MODEL": "tcm-small", "MODEL_KWARGS": {"N": 32}}).model_kwargs == {"N": 32}
    assert TrainingStage.from_params({}).model_kwargs == TrainingStage().model_kwargs  # the default model's own
    demo = TrainingStage.from_profile("demo")
    assert TrainingStage.from_profile("demo", model="tcm-tiny").model_kwargs == {}  # icm train --model tcm-tiny
    assert TrainingStage.from_profile("demo", model=demo.model).model_kwargs == demo.model_kwargs
    assert TrainingStage.from_profile("demo", model="tcm-tiny", model_kwargs={"N": 8}).model_kwargs == {"N": 8}
    # the pipeline injects it too, or notebook 02's parameters cell would keep the demo's
    (project_root / "notebooks" / "params").mkdir(parents=True, exist_ok=True)
    (project_root / "notebooks" / "params" / "smoke.yaml").write_text("02_train_codecs:\n  MODEL: tcm-small\n")
    assert notebook_params("smoke", "02_train_codecs")["MODEL_KWARGS"] == {}


def test_bad_profile_keys_are_refused_in_one_line(project_root):
    (project_root / "notebooks" / "params").mkdir(parents=True, exist_ok=True)
    (project_root / "notebooks" / "params" / "smoke.yaml").write_text("02_train_codecs:\n  STEPZ: 3\n")
    with pytest.raises(ValueError, match=r"smoke.yaml: 02_train_codecs: unknown setting\(s\) STEPZ; known: .*STEPS"):
        notebook_params("smoke", "02_train_codecs")
    (project_root / "notebooks" / "params" / "smoke.yaml").write_text("02_train_codecs:\n  LAMBDAS: [0.01]\n")
    with pytest.raises(ValueError, match=r"LAMBDAS must be dict, got \[0.01\]"):
        TrainingStage.from_profile("smoke")


def test_command_flags_come_from_the_stage(capsys):
    """Every training setting is a flag of icm train, with the stage's documentation as its help."""
    from icm_lib.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in TrainingStage._types():
        if name not in ("profile", "zoo", "lambdas"):
            assert f"--{name.replace('_', '-')}" in help_text
    assert "fractions of the steps where the lr drops 10x" in help_text
    args = build_parser().parse_args(
        [
            "train",
            "--profile",
            "smoke",
            "--steps",
            "7",
            "--model-kwargs",
            "N=8,M=16",
            "--decay-at",
            "0.5",
            "0.75",
            "--cache-images",
        ]
    )
    from icm_lib.cli.train import stage_of

    stage = stage_of(args)
    assert (stage.steps, stage.model_kwargs, stage.decay_at, stage.cache_images) == (
        7,
        {"N": 8, "M": 16},
        [0.5, 0.75],
        True,
    )
    assert stage.lambdas == TrainingStage.from_profile("smoke").lambdas
