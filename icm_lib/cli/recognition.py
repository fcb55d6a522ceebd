"""``icm evaluate``: notebook 04's plan, detectors scored on decoded images (:mod:`icm_lib.evaluate.recognition.curves`)."""
from __future__ import annotations

import argparse

from icm_lib.errors import UserError
from icm_lib.evaluate.recognition.curves import headline, profile_plan, run_profile


def _cli(args: argparse.Namespace) -> int:
    plan = profile_plan(args.profile, args.dataset, args.detector, finetune=not args.no_finetune)
    try:
        summary = run_profile(plan, args.profile)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    for dataset in plan.datasets:
        for detector, info in summary.get(dataset, {}).items():
            print(f"[evaluate] {dataset}/{detector}: {info['folder']} {headline(args.profile, dataset, detector)}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="detector accuracy on decoded images, fine-tuning and BD-rate (notebook 04's plan)")
    p.add_argument("--profile", default="demo")
    p.add_argument("--dataset", nargs="+", help="datasets (default: the profile's)")
    p.add_argument("--detector", nargs="+", choices=["yolo", "maskrcnn"], help="detectors (default: the profile's)")
    p.add_argument("--no-finetune", action="store_true", help="score the pre-trained detectors only")
    p.set_defaults(func=_cli)
