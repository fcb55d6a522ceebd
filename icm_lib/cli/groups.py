"""Argparse helpers shared by the command modules of :mod:`icm_lib.cli`.

Nested command groups (``icm bench codec``, ``icm zoo list``): several modules add commands to
one group, so the group is made once and shared. And the ``--max-...`` flags of the resource
limits (:mod:`icm_lib.limits`). A module of its own, apart from :mod:`icm_lib.cli`, so that a
command module run alone (``python -m icm_lib.cli.zoo``) needs nothing else of the CLI.
"""

from __future__ import annotations

import argparse

from icm_lib import limits as _limits
from icm_lib.errors import UserError


def group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The nested sub-parsers of a command group (``icm bench codec``), shared between modules."""
    # Kept on the parser itself: a table keyed by id() handed a new parser the groups of a
    # collected one whose id it reused ("conflicting subparser" after some main() calls).
    known = vars(subparsers).setdefault("_icm_groups", {})
    if name not in known:
        parser = subparsers.add_parser(name, help=help)
        known[name] = parser.add_subparsers(dest=f"{name}_command", required=True)
    return known[name]


def add_limit_arguments(parser: argparse.ArgumentParser, *limits: _limits.Limit) -> None:
    """Add ``--max-...`` flags for ``limits`` (all by default); :func:`icm_lib.limits.overridden` applies them."""
    for limit in limits or _limits.LIMITS:
        parser.add_argument(f"--{limit.name}", type=_limits.size, metavar="SIZE", help=f"{limit.doc}; also {limit.env}")


def stage_from(stage_class, args: argparse.Namespace, **overrides):
    """A stage's settings (:mod:`icm_lib.config`) from the profile and the command line; a bad one is a one-line error."""
    try:
        return stage_class.from_args(args, **overrides)
    except ValueError as err:
        raise UserError(str(err)) from None
