"""Writing results without ever leaving half a file, and without overwriting what a user needs.

Every file the package writes that a later step reads (datasets' JSON,
bitstreams, records, results, training summaries, checkpoints) goes through a
temporary file ``.NAME.<pid>-<random>.tmp`` in the same folder and an atomic
rename, so a killed process leaves either the old file or the new one. The new
file gets the permissions of the file it replaces, or those the user's umask
gives a new file (not ``mkstemp``'s 0600). A temporary file left by a killed
process (its pid no longer runs, or a name from before pids were recorded) is
removed when that file is next written by a process that had not yet written
into that folder (each process lists a folder once), i.e. on the next run.

:func:`check_output` is what the command line asks before it writes a user's
output path: never the input itself, never a folder, never an existing file
of another kind unless forced. :func:`open_image` opens a user's image without
decoding it, so that its size can be checked first.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from icm_lib.errors import UserError

# ".NAME.<pid>-<8 random>.tmp" (this module) or ".NAME.<8 random>.tmp" (before pids were recorded)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp$")
_temporaries_seen: dict[str, dict[str, list[tuple[Path, int | None]]]] = {}


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no other way to read it; set back at once
    os.umask(mask)
    return mask


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the ``.NAME.*.tmp`` files that killed writers of ``path`` left behind; returns them.

    The folder is listed once per process (a folder of 5,000 masks costs one listing, not 5,000).
    """
    folder = str(Path(path).parent.absolute())
    if folder not in _temporaries_seen:
        found: dict[str, list[tuple[Path, int | None]]] = {}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            entries = []
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                pid = int(match["pid"]) if match["pid"] else None
                found.setdefault(match["name"], []).append((Path(entry.path), pid))
        _temporaries_seen[folder] = found
    removed = []
    for tmp, pid in _temporaries_seen[folder].pop(Path(path).name, []):
        if pid is None or not _running(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` atomically when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    try:
        mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask()
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename; returns ``path``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_writer(path) as fh:
        fh.write(data)
    return Path(path)


def files_fingerprint(*paths: Path) -> str:
    """A cheap fingerprint of what files hold: for each path (a file, or every file under a folder) its name,
    size and modification time. A rewritten file gets a new time; reading the contents of a COCO-sized
    split on every reuse check would take minutes. A missing path counts as empty."""
    digest = hashlib.sha256()
    for root in map(Path, paths):
        digest.update(f"{root.name}\0".encode())
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in files:
            st = path.stat()
            name = path.name if path == root else path.relative_to(root)
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(path: Path, sha256: str, what: str) -> Path:
    """``path``, after checking that it exists and that its bytes have the manifest's ``sha256``."""
    if not path.is_file():
        raise UserError(f"{what} {path} is missing: restore it with git checkout")
    actual = file_sha256(path)
    if actual != sha256:
        raise UserError(
            f"{what} {path} does not match its manifest (sha256 {actual[:16]}..., expected "
            f"{sha256[:16]}...): it was modified or corrupted; restore it with git checkout"
        )
    return path


def json_safe(value: Any, path: Callable[[Path], str] = str) -> Any:
    """A copy that JSON can hold: NaN/inf as None, numpy scalars as Python numbers, paths through ``path``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, path) for v in value]
    if isinstance(value, Path):
        return path(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: Any, indent: int = 2) -> Path:
    """:func:`json_safe` ``payload`` written atomically as indented JSON; returns ``path``."""
    return write_atomic(path, json.dumps(json_safe(payload), indent=indent) + "\n")


@contextmanager
def pil_bomb_check_off() -> Iterator[None]:
    """PIL's own decompression-bomb limit off, while :mod:`icm_lib.limits` decides (one limit, one message)."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(path: Path):
    """A PIL image opened but not decoded (its size known, its pixels not read); a one-line UserError if it is none."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with pil_bomb_check_off():
            return Image.open(path)
    # ImportError: ultralytics patches Image.open to try a HEIF plugin on files PIL cannot identify
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0][:120]}") from None


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a missing or malformed file is a one-line :class:`UserError` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: malformed JSON ({err})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(
    path: Path, inputs: Iterable[Path] = (), kind: tuple[str, Callable[[Path], bool]] | None = None, force: bool = False
) -> Path:
    """Refuse to write ``path`` where that would destroy something; returns it.

    Refused always: a folder; one of ``inputs`` (the same resolved path or the same inode);
    a path under a file. Refused unless ``force``: an existing non-empty file that is not of
    the output's own ``kind`` (``("a bitstream", is_bitstream)``: a name and a test).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a folder: give a file name")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise UserError(f"output {path} is the input {source}: refusing to overwrite it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is not a folder")
    if kind and not force and path.is_file() and path.stat().st_size > 0 and not kind[1](path):
        raise UserError(f"{path} exists and is not {kind[0]}: refusing to overwrite it (--force to overwrite)")
    return path


def write_output(path: Path, data: bytes | str) -> Path:
    """:func:`write_atomic` for a path the user gave: a failure is a one-line :class:`UserError`."""
    try:
        return write_atomic(path, data)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
