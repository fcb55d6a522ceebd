"""``icm code``: the coding sweep of notebook 03 (:func:`icm_lib.evaluate.coding.sweep.code_profile`).

Its settings are the profile's :class:`icm_lib.config.CodingStage`, each overridable by its flag.
"""

from __future__ import annotations

import argparse

from icm_lib.cli.groups import stage_from
from icm_lib.config import CodingStage
from icm_lib.evaluate.coding.sweep import code_profile


def _cli(args: argparse.Namespace) -> int:
    stage = stage_from(CodingStage, args)
    for dataset, families in code_profile(args.profile, stage, args.codecs).items():
        for family, path in families.items():
            print(f"[coding] {dataset}/{stage.split} {family}: {path}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("code", help="encode and decode dataset splits with learned and classical codecs (notebook 03)")
    p.add_argument(
        "--profile", default="demo", help="smoke | demo | paper: defaults from its 03_coding_examples section"
    )
    p.add_argument(
        "--codecs",
        nargs="+",
        default=["all"],
        help="all | classical | learned | a family (jpeg, tcm-tiny-object) | a codec id (jpeg@q30)",
    )
    CodingStage.add_arguments(p, skip=("n_examples", "object_lambda", "interactive"))
    p.set_defaults(func=_cli)
