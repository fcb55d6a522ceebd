"""The ``icm`` command line: one sub-command group per library module.

Each module listed in ``COMMAND_MODULES`` defines ``add_cli(subparsers)``,
which adds its sub-commands and sets ``func`` (called with the parsed args,
returning an exit status). Errors meant for the user are raised as
:class:`UserError` and printed as one line, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "icm_lib.data.cli",
    "icm_lib.models",
    "icm_lib.codec_cli",
    "icm_lib.train",
    "icm_lib.zoo",
    "icm_lib.evaluate.coding",
    "icm_lib.evaluate.recognition",
    "icm_lib.bench_codec",
    "icm_lib.bench_train",
    "icm_lib.pipeline",
)


class UserError(Exception):
    """A problem with the user's input: printed as ``icm: error: <message>``, exit status 2."""


def group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The nested sub-parsers of a command group (``icm bench codec``), shared between modules."""
    # Kept on the parser itself: a table keyed by id() handed a new parser the groups of a
    # collected one whose id it reused ("conflicting subparser" after some main() calls).
    known = vars(subparsers).setdefault("_icm_groups", {})
    if name not in known:
        parser = subparsers.add_parser(name, help=help)
        known[name] = parser.add_subparsers(dest=f"{name}_command", required=True)
    return known[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icm", description="Image coding for machines with object region learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from icm_lib import limits

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
    # `python -m icm_lib.cli` runs this file as __main__: call the imported module's main, whose
    # UserError is the one the library raises (this file's copy would let it through as a traceback).
    from icm_lib.cli import main as _main

    sys.exit(_main())
