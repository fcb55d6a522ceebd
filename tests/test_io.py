"""Atomic writes keep the old file when writing fails; JSON holds no NaN."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from icm_lib.io import json_safe, write_atomic, write_json


def test_write_atomic_replaces_whole_file(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.txt", "first")
    write_atomic(path, b"second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"], "no temporary file is left behind"


def test_failed_write_keeps_previous_content(tmp_path):
    path = write_json(tmp_path / "r.json", {"bpp": [0.1]})
    with pytest.raises(TypeError):
        write_json(path, {"bpp": [object()]})
    assert json.loads(path.read_text()) == {"bpp": [0.1]}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_json_safe_values():
    out = json_safe({"nan": math.nan, "inf": [math.inf, 1.5], "np": np.float32(2.0), "path": Path("a/b"), 3: (1, 2)})
    assert out == {"nan": None, "inf": [None, 1.5], "np": 2.0, "path": "a/b", "3": [1, 2]}
    assert json.dumps(out, allow_nan=False)


def test_notebook_record_writes_paths_relative_to_the_project(project_root):
    from icm_lib.notebook import read_record, record

    record(
        "99_test",
        "smoke",
        {"figure": project_root / "figures" / "a.png", "outside": Path("/elsewhere/b"), "x": math.nan},
    )
    rec = read_record("99_test", "smoke")
    assert rec["figure"] == "figures/a.png" and rec["outside"] == "/elsewhere/b" and rec["x"] is None
