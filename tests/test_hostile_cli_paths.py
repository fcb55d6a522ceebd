"""Output paths of `icm encode` / `icm decode` / `icm masks`: nothing the user needs is overwritten.

Each case checks the exit status, the one-line message and that no file was created or changed;
then the files' permissions (the umask, not 0600) and the temporary files a killed run leaves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from hostile import REPO, assert_error_line, codec_files, snapshot
from icm_lib.cli import main
from icm_lib.io import remove_stale_temporaries, write_atomic

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """hostile.codec_files (a 40x24 image) and the image's bitstream ``x.icm``, made once."""
    root = codec_files(tmp_path_factory.mktemp("made"), 24, 40)
    assert _icm("encode", root / "a.png", root / "x.icm", "--checkpoint", root / "ckpt.pt") == 0
    return root


@pytest.fixture
def work(made, tmp_path):
    """A fresh copy of ``made``'s files for one test."""
    for name in ("ckpt.pt", "a.png", "x.icm"):
        shutil.copy(made / name, tmp_path / name)
    return tmp_path


def _icm(*args) -> int:
    return main([str(a) for a in args])


def _encode(work, output, *extra):
    return _icm("encode", work / "a.png", work / output, "--checkpoint", work / "ckpt.pt", *extra)


def _decode(work, source, output, *extra):
    return _icm("decode", work / source, work / output, "--checkpoint", work / "ckpt.pt", *extra)


@pytest.mark.parametrize(
    "case, message",
    [
        ("encode a.png a.png", "output {w}/a.png is the input {w}/a.png: refusing to overwrite it"),
        ("encode a.png ckpt.pt", "output {w}/ckpt.pt is the input {w}/ckpt.pt"),
        ("encode to a hard link of a.png", "is the input {w}/a.png"),
        ("encode to a symlink to the checkpoint", "is the input {w}/ckpt.pt"),
        ("decode x.png x.png", "output {w}/x.png is the input {w}/x.png"),
        ("encode to a folder", "is a folder: give a file name"),
        ("decode to a folder", "is a folder: give a file name"),
        ("encode over a text file", "exists and is not a bitstream: refusing to overwrite it (--force to overwrite)"),
        ("decode over a bitstream named .png", "exists and is not an image"),
        ("encode under a file", "is not a folder"),
    ],
)
def test_outputs_that_would_destroy_data_are_refused(work, capsys, case, message):
    os.link(work / "a.png", work / "hard.icm")
    (work / "soft.icm").symlink_to(work / "ckpt.pt")
    (work / "x.png").write_bytes((work / "x.icm").read_bytes())
    (work / "outdir").mkdir()
    (work / "out.png").mkdir()
    (work / "notes.txt").write_text("my notes")
    before = snapshot(work)
    status = {
        "encode a.png a.png": lambda: _encode(work, "a.png"),
        "encode a.png ckpt.pt": lambda: _encode(work, "ckpt.pt"),
        "encode to a hard link of a.png": lambda: _encode(work, "hard.icm"),
        "encode to a symlink to the checkpoint": lambda: _encode(work, "soft.icm"),
        "decode x.png x.png": lambda: _decode(work, "x.png", "x.png"),
        "encode to a folder": lambda: _encode(work, "outdir"),
        "decode to a folder": lambda: _decode(work, "x.icm", "out.png"),
        "encode over a text file": lambda: _encode(work, "notes.txt"),
        "decode over a bitstream named .png": lambda: _decode(work, "x.icm", "x.png"),
        "encode under a file": lambda: _encode(work, "notes.txt/x.icm"),
    }[case]()
    assert_error_line(status, capsys.readouterr().err, message.format(w=work))
    assert snapshot(work) == before


def test_force_and_outputs_of_the_same_kind(work, capsys):
    (work / "notes.txt").write_text("my notes")
    (work / "empty.icm").write_bytes(b"")
    assert _encode(work, "notes.txt", "--force") == 0 and (work / "notes.txt").read_bytes()[:4] == b"ICMB"
    assert _encode(work, "x.icm") == 0  # a bitstream over a bitstream
    assert _encode(work, "empty.icm") == 0  # nothing to lose
    assert _decode(work, "x.icm", "a.png") == 0  # an image over an image
    (work / "y.png").write_bytes((work / "x.icm").read_bytes())
    assert _decode(work, "x.icm", "y.png", "--force") == 0 and Image.open(work / "y.png").size == (40, 24)
    capsys.readouterr()


def test_non_image_output_refused_under_a_patched_image_open(work, capsys, monkeypatch):
    """ultralytics, once imported, makes PIL's Image.open raise ImportError on files it cannot identify."""
    from PIL import Image, UnidentifiedImageError

    original = Image.open

    def patched(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except UnidentifiedImageError:
            raise ModuleNotFoundError("No module named 'pi_heif'") from None

    monkeypatch.setattr(Image, "open", patched)
    (work / "y.png").write_bytes((work / "x.icm").read_bytes())
    before = snapshot(work)
    assert_error_line(_decode(work, "x.icm", "y.png"), capsys.readouterr().err, "exists and is not an image")
    assert snapshot(work) == before


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_umask(work, umask):
    old = os.umask(umask)
    try:
        assert _encode(work, "new.icm") == 0 and _decode(work, "new.icm", "new.png") == 0
        write_atomic(work / "r.json", "{}")
    finally:
        os.umask(old)
    for name in ("new.icm", "new.png", "r.json"):
        assert (work / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_stale_temporaries_of_a_killed_run_are_removed(work):
    """Removed the first time a process writes into their folder (the folder is listed once per process)."""
    out = work / "out"
    out.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = [out / ".o.icm.abcd1234.tmp", out / f".o.icm.{dead}-abcd1234.tmp"]
    kept = [out / f".o.icm.{os.getpid()}-live0000.tmp", out / ".other.icm.abcd1234.tmp", out / ".o.icm.notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    assert _encode(work, "out/o.icm") == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)  # a live writer's, another file's, and no temporary name at all
    assert remove_stale_temporaries(out / "o.icm") == []


def test_python_dash_m_prints_one_line_errors(tmp_path):
    """`python -m icm_lib.cli` used to turn every UserError into a traceback (its own copy of the class)."""
    out = subprocess.run(
        [sys.executable, "-m", "icm_lib.cli", "masks", "--annotations", "none.json", "--images", ".", "--out", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2 and out.stderr.strip() == "icm: error: annotation file not found: none.json"
