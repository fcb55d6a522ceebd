"""Nested command groups of the ``icm`` command line (``icm bench codec``, ``icm zoo list``).

Several modules add commands to one group, so the group is made once and shared. A module of
its own, apart from :mod:`icm_lib.cli`, because the CLI imports the modules that add commands:
their importing it back would be a cycle.
"""

from __future__ import annotations

import argparse


def group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The nested sub-parsers of a command group (``icm bench codec``), shared between modules."""
    # Kept on the parser itself: a table keyed by id() handed a new parser the groups of a
    # collected one whose id it reused ("conflicting subparser" after some main() calls).
    known = vars(subparsers).setdefault("_icm_groups", {})
    if name not in known:
        parser = subparsers.add_parser(name, help=help)
        known[name] = parser.add_subparsers(dest=f"{name}_command", required=True)
    return known[name]
