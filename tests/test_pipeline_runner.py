"""The pipeline runner: notebooks in order, parameters injected, first failure named."""

from __future__ import annotations

import json
import logging

import nbformat
import pytest

from icm_lib.cli import main
from icm_lib.config import load_profile, notebook_params
from icm_lib.errors import UserError
from icm_lib.pipeline import NotebookFailure, SettingsOfTheStage, pipeline_notebooks, run_pipeline


def _notebook(path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE: str = "x"  # profile\nVALUE: int = 0  # a value')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture
def toy_project(tmp_path, monkeypatch):
    root = tmp_path / "toy"
    (root / "notebooks" / "params").mkdir(parents=True)
    (root / "notebooks" / "params" / "smoke.yaml").write_text("01_first:\n  VALUE: 7\n02_second: {}\n03_third: {}\n")
    out = root / "out"
    _notebook(root / "notebooks" / "01_first.ipynb", f"open({str(out / 'first.json')!r}, 'w').write(str(VALUE))")
    _notebook(root / "notebooks" / "02_second.ipynb", "x = 1", "raise ValueError('broken on purpose')", "y = 2")
    _notebook(root / "notebooks" / "03_third.ipynb", f"open({str(out / 'third.json')!r}, 'w').write('ran')")
    out.mkdir()
    monkeypatch.setenv("ICM_ROOT", str(root))
    return root


def test_parameters_injected_and_first_failure_named(toy_project):
    with pytest.raises(NotebookFailure) as info:
        run_pipeline("smoke")
    failure = info.value
    assert failure.notebook == "02_second.ipynb"
    assert failure.cell == 3  # parameters cell is 1, "x = 1" is 2
    assert "ValueError: broken on purpose" in str(failure)
    assert json.loads((toy_project / "out" / "first.json").read_text()) == 7
    assert not (toy_project / "out" / "third.json").exists(), "the pipeline must stop at the first failure"
    assert (toy_project / "runs" / "smoke" / "02_second.ipynb").is_file(), "the failed executed copy is kept"


def test_cli_reports_failure_in_one_line(toy_project, capsys):
    assert main(["pipeline", "--profile", "smoke", "--only", "02"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("icm: error: notebook 02_second.ipynb failed in cell 3")


def test_only_filters_and_rejects_unknown(toy_project):
    assert [p.name for p in pipeline_notebooks(["01", "03"])] == ["01_first.ipynb", "03_third.ipynb"]
    with pytest.raises(UserError):
        pipeline_notebooks(["99"])


def test_profile_parameters(toy_project):
    assert notebook_params("smoke", "01_first") == {"VALUE": 7, "PROFILE": "smoke"}
    assert notebook_params("smoke", "notebooks/02_second.ipynb") == {"PROFILE": "smoke"}
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        load_profile("nope")


def test_malformed_profile_is_refused(toy_project):
    (toy_project / "notebooks" / "params" / "smoke.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping of notebook sections"):
        load_profile("smoke")


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_project_profiles_name_only_settings_of_their_stage(profile):
    """Every key of a profile is a setting of its notebook's stage (typed, checked before anything runs), and
    every parameter papermill parses from a notebook's cell is one too. Papermill injects the settings a short
    cell leaves out; the notebook reads them back through its stage (Stage.from_namespace)."""
    import papermill

    from icm_lib.config import STAGES
    from icm_lib.paths import project_root

    stages = {stage.NOTEBOOK: stage for stage in STAGES}
    for notebook in sorted((project_root() / "notebooks").glob("0*.ipynb")):
        settings = {name.upper() for name in stages[notebook.stem]._types()}
        declared = {p["name"] for p in papermill.inspect_notebook(str(notebook)).values()}
        given = set(notebook_params(profile, notebook.stem))
        assert given <= settings and declared <= settings, f"{notebook.name}: {sorted((given | declared) - settings)}"


def test_papermill_quiet_only_about_the_stages_own_settings():
    def record(message):
        return logging.LogRecord("papermill", logging.WARNING, __file__, 1, message, None, None)

    def passed(name):
        return record(f"Passed unknown parameter: {name}")

    recognition = SettingsOfTheStage("04_recognition_accuracy")
    assert not recognition.filter(passed("FINETUNE_EPOCHS")), "a RecognitionStage setting is checked already"
    assert recognition.filter(passed("FINETUNE_EPOCS")), "a name the stage does not know still warns"
    assert recognition.filter(passed("LAMBDAS")), "another stage's setting still warns"
    assert recognition.filter(record("Input Notebook: 04_recognition_accuracy.ipynb")), "other messages pass"
    assert SettingsOfTheStage("01_first").filter(passed("VALUE")), "a notebook without a stage keeps every warning"
