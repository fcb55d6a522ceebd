"""The ``icm`` command line: one sub-command group per library module.

Each module listed in ``COMMAND_MODULES`` defines ``add_cli(subparsers)``,
which adds its sub-commands and sets ``func`` (called with the parsed args,
returning an exit status). Errors meant for the user are raised as
:class:`icm_lib.errors.UserError` and printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from icm_lib import limits
from icm_lib.cli_groups import group
from icm_lib.errors import UserError

__all__ = ["COMMAND_MODULES", "UserError", "build_parser", "group", "main"]  # UserError, group: their old home

COMMAND_MODULES = (
    "icm_lib.data.cli",
    "icm_lib.models",
    "icm_lib.codec_cli",
    "icm_lib.train",
    "icm_lib.zoo",
    "icm_lib.evaluate.coding.sweep",
    "icm_lib.evaluate.recognition.curves",
    "icm_lib.bench_codec",
    "icm_lib.bench_train",
    "icm_lib.pipeline",
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


if __name__ == "__main__":
    sys.exit(main())
