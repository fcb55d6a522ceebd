"""The pipeline: the numbered notebooks run in order with papermill.

``icm pipeline --profile smoke|demo|paper`` executes ``notebooks/NN_*.ipynb``
with the parameters of ``notebooks/params/<profile>.yaml`` and writes the
executed copies to ``runs/<profile>/``. It stops at the first failing notebook
and names it and the failing cell.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from icm_lib.config import PROFILES, fields_of, notebook_params, stage_of
from icm_lib.errors import UserError
from icm_lib.paths import notebooks_dir, runs_dir


@dataclass
class NotebookFailure(Exception):
    """A notebook raised: which one, which cell (1-based, counting code cells), and the error."""

    notebook: str
    cell: int | None
    error: str

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "an unknown cell"
        return f"notebook {self.notebook} failed in {where}: {self.error}"


def pipeline_notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; ``only`` keeps those whose stem starts with one of the prefixes."""
    books = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [b for b in books if any(b.stem.startswith(p) for p in only)]
        if not books:
            raise UserError(f"no notebook matches {only}")
    return books


def run_notebook(path: Path, profile: str, out_dir: Path, stream: bool = False) -> Path:
    """Execute one notebook with its profile parameters; returns the executed copy's path.

    ``stream`` echoes the kernel's stdout and stderr (progress bars, training logs) to
    this process's, so a long run shows its progress and not only papermill's cell count.

    Raises:
        NotebookFailure: a cell raised; names the cell and the exception.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    quiet, papermill_log = SettingsOfTheStage(path.stem), logging.getLogger("papermill")
    papermill_log.addFilter(quiet)
    try:
        pm.execute_notebook(
            str(path),
            str(output),
            parameters=notebook_params(profile, path),
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=True,
            stdout_file=sys.stdout if stream else None,
            stderr_file=sys.stderr if stream else None,
        )
    except PapermillExecutionError as err:
        raise NotebookFailure(path.name, _code_cell_number(path, err.source), f"{err.ename}: {err.evalue}") from err
    finally:
        papermill_log.removeFilter(quiet)
    return output


class SettingsOfTheStage(logging.Filter):
    """Drops papermill's "Passed unknown parameter: NAME" where NAME is a setting of the notebook's stage.

    A notebook may read settings through its stage (``RecognitionStage.from_namespace(globals())``)
    rather than list them all in its parameters cell; papermill warns about each of those on every
    run, although :func:`notebook_params` has already checked them against the stage (a misspelt
    key is refused there). Any other name still warns.
    """

    PREFIX = "Passed unknown parameter: "

    def __init__(self, notebook: str):
        super().__init__()
        stage = stage_of(notebook)
        self.settings = {name.upper() for name in fields_of(stage)} if stage else set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(self.PREFIX) and message[len(self.PREFIX) :] in self.settings)


def _code_cell_number(notebook: Path, source: str) -> int | None:
    """1-based number, among the notebook's own code cells, of the cell whose source failed.

    Papermill's index counts the cells it inserted (parameters, error markers), so
    the failing cell is found again by its source in the notebook as the user wrote it.
    """
    import nbformat

    try:
        cells = nbformat.read(str(notebook), as_version=4).cells
    except Exception:  # noqa: BLE001 - only used to phrase the error message
        return None
    code = [c.source for c in cells if c.cell_type == "code"]
    return code.index(source) + 1 if source in code else None


def run_pipeline(profile: str, only: list[str] | None = None, stream: bool = False) -> list[Path]:
    """Run the notebooks in order; stops at the first failure (raises :class:`NotebookFailure`)."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out_dir = runs_dir(profile)
    done = []
    for book in pipeline_notebooks(only):
        start = time.perf_counter()
        print(f"[pipeline:{profile}] {book.name} ...", flush=True)
        done.append(run_notebook(book, profile, out_dir, stream))
        print(f"[pipeline:{profile}] {book.name} done in {time.perf_counter() - start:.0f} s", flush=True)
    return done
