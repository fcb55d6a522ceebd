"""Resource limits: how much a file from someone else may make this package allocate.

Bitstreams, images, checkpoints and annotation files can come from anyone, and
a few bytes can claim a huge image. Every size such a file claims is checked
against these limits *before* anything of that size is allocated; a refusal is
one line naming the limit and how to raise it.

=============  ==============================  ================  ==============================
limit          default                         environment       what it bounds
=============  ==============================  ================  ==============================
max-memory     half the machine's memory       ICM_MAX_MEMORY    estimated working memory of one
               (or of its cgroup limit)                          encode or decode, and the size of
                                                                 a bitstream file read whole
max-pixels     64 Mi pixels (8192 x 8192)      ICM_MAX_PIXELS    an image to encode, a decoded
                                                                 image, a mask
max-side       16384 pixels                    ICM_MAX_SIDE      either side of those images
=============  ==============================  ================  ==============================

Values take the suffixes K, M, G, T (powers of 1024): ``ICM_MAX_MEMORY=24G``.
``icm encode``, ``icm decode`` and ``icm masks`` take the same limits as flags
(``--max-memory 24G``), which win over the environment for that command.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from icm_lib.errors import UserError

_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def size(text: str) -> int:
    """``"24G"`` -> 25769803776: a positive number, optionally with K, M, G or T (powers of 1024).

    Raises:
        ValueError: anything else (argparse reports it as an invalid size).
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match[1]) * _SUFFIXES[match[2].upper()] < 1:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match[1]) * _SUFFIXES[match[2].upper()])


def format_size(value: int, unit: str = "bytes") -> str:
    """A size for messages: ``4.0 GiB``, ``64.0 Mi pixels``, ``16384 pixels``."""
    if value < 2**20:
        return f"{value} {unit}"
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if value >= factor:
            return f"{value / factor:.1f} {suffix}{'B' if unit == 'bytes' else ' ' + unit}"
    raise AssertionError("unreachable")


def machine_memory() -> int:
    """Physical memory, or the cgroup's memory limit when that is lower (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


@dataclass(frozen=True)
class Limit:
    """One named limit: its flag, environment variable, default and meaning."""

    name: str  # the flag without dashes, e.g. "max-memory"
    env: str  # environment variable that overrides the default
    default: Callable[[], int]  # computed when asked: max-memory depends on the machine
    unit: str  # "bytes" or "pixels", for messages
    doc: str  # what it bounds, for --help and the README

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def value(self) -> int:
        """The limit in force: a flag of the running command, else the environment, else the default."""
        if self.name in _overrides:
            return _overrides[self.name]
        text = os.environ.get(self.env)
        if text is None or not text.strip():
            return self.default()
        try:
            return size(text)
        except ValueError:
            raise UserError(f"{self.env}={text!r} is not a size (examples: 4096, 512M, 24G)") from None

    def check(self, needed: int, what: str, label: str = "") -> None:
        """Raise a one-line :class:`UserError` when ``needed`` exceeds the limit.

        The message reads ``<what>: <label><needed>, over the <name> limit of <allowed>; refused (...)``.
        """
        allowed = self.value()
        if needed > allowed:
            raise UserError(
                f"{what}: {label}{format_size(needed, self.unit)}, over the {self.name} limit of "
                f"{format_size(allowed, self.unit)}; refused (raise it with --{self.name} or {self.env})"
            )


MAX_MEMORY = Limit(
    "max-memory",
    "ICM_MAX_MEMORY",
    lambda: machine_memory() // 2,
    "bytes",
    "estimated working memory of one encode or decode (default: half the machine's memory)",
)
MAX_PIXELS = Limit(
    "max-pixels",
    "ICM_MAX_PIXELS",
    lambda: 64 * 2**20,
    "pixels",
    "pixels of an image to encode, decode or mask (default 64 Mi)",
)
MAX_SIDE = Limit(
    "max-side",
    "ICM_MAX_SIDE",
    lambda: 16384,
    "pixels",
    "either side of an image to encode, decode or mask (default 16384)",
)
LIMITS = (MAX_MEMORY, MAX_PIXELS, MAX_SIDE)

_overrides: dict[str, int] = {}


def check_image_size(height: int, width: int, what: str) -> None:
    """Refuse an image whose sides or pixel count exceed :data:`MAX_SIDE` or :data:`MAX_PIXELS`.

    ``what`` names the image: ``"encoding photo.png"`` gives ``encoding photo.png (9000x9000 pixels): ...``.
    """
    what = f"{what} ({width}x{height} pixels)"
    if height < 1 or width < 1:
        raise UserError(f"{what}: refused (sides must be positive)")
    MAX_SIDE.check(max(height, width), what, "a side of ")
    MAX_PIXELS.check(height * width, what)


def add_arguments(parser: argparse.ArgumentParser, *limits: Limit) -> None:
    """Add ``--max-...`` flags for ``limits`` (all by default); :func:`overridden` applies them."""
    for limit in limits or LIMITS:
        parser.add_argument(f"--{limit.name}", type=size, metavar="SIZE", help=f"{limit.doc}; also {limit.env}")


@contextmanager
def overridden(args: argparse.Namespace) -> Iterator[None]:
    """The limit flags given on a command line in force while it runs (restored afterwards)."""
    given = {limit.name: getattr(args, limit.dest) for limit in LIMITS if getattr(args, limit.dest, None) is not None}
    saved = dict(_overrides)
    _overrides.update(given)
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)
