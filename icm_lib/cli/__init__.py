"""The ``icm`` command line: it parses, calls a library function and prints, nothing more.

One module per command group (``icm_lib.cli.data``, ``.models``, ``.codec``, ``.train``,
``.zoo``, ``.coding``, ``.recognition``, ``.bench``, ``.pipeline``), each listed in
``COMMAND_MODULES`` and defining ``add_cli(subparsers)``, which adds its sub-commands and
sets ``func`` (called with the parsed args, returning an exit status). Errors meant for the
user are raised as :class:`icm_lib.errors.UserError` and printed as one line, never a
traceback. The library never imports this package.

The command modules are imported by name when the parser is built, not here: ``python -m
icm_lib.cli.zoo`` then loads this package without the other commands' dependencies
(ultralytics, papermill), which a bare GPU machine lacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from icm_lib import limits
from icm_lib.cli.groups import group
from icm_lib.errors import UserError

__all__ = ["COMMAND_MODULES", "UserError", "build_parser", "group", "main"]  # UserError, group: their old home

COMMAND_MODULES = (
    "icm_lib.cli.data",
    "icm_lib.cli.models",
    "icm_lib.cli.codec",
    "icm_lib.cli.train",
    "icm_lib.cli.zoo",
    "icm_lib.cli.coding",
    "icm_lib.cli.recognition",
    "icm_lib.cli.bench",
    "icm_lib.cli.pipeline",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icm", description="Image coding for machines with object region learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with limits.overridden(args):
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"icm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("icm: interrupted", file=sys.stderr)
        return 130
