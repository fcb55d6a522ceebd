"""``icm evaluate``: notebook 04's plan, detectors scored on decoded images (:mod:`icm_lib.evaluate.recognition.curves`).

Its settings are the profile's :class:`icm_lib.config.RecognitionStage`, each overridable by its flag.
"""

from __future__ import annotations

import argparse

from icm_lib.cli.groups import stage_from
from icm_lib.config import RecognitionStage
from icm_lib.errors import UserError
from icm_lib.evaluate.recognition.curves import headline, run_stage


def _cli(args: argparse.Namespace) -> int:
    stage = stage_from(RecognitionStage, args)
    try:
        plan, summary = run_stage(args.profile, stage)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    for dataset in plan.datasets:
        for detector, info in summary.get(dataset, {}).items():
            print(f"[evaluate] {dataset}/{detector}: {info['folder']} {headline(args.profile, dataset, detector)}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="detector accuracy on decoded images, fine-tuning and BD-rate (notebook 04's plan)"
    )
    p.add_argument("--profile", default="demo")
    RecognitionStage.add_arguments(p, skip=("headline",))
    p.set_defaults(func=_cli)
