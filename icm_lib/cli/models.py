"""``icm models``: the registered codec models (:mod:`icm_lib.models`) with their parameter counts."""

from __future__ import annotations

import argparse

from icm_lib.models import available, create, defaults, parameter_count


def _list_models(args: argparse.Namespace) -> int:
    print(f"{'model':<22} {'parameters':>12}  config")
    for name in available():
        print(f"{name:<22} {parameter_count(create(name)):>12,}  {defaults(name)}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list the registered codec models with their parameter counts")
    parser.set_defaults(func=_list_models)
