"""``icm code``: the coding sweep of notebook 03 (:mod:`icm_lib.evaluate.coding.sweep`).

Its defaults come from the profile's ``03_coding_examples`` section (:func:`coding_run`).
"""
from __future__ import annotations

import argparse

from icm_lib.evaluate.coding.sweep import coding_run, coding_sweep


def _cli(args: argparse.Namespace) -> int:
    run = coding_run(args.profile, args.dataset, args.split, args.codecs, args.limit, args.workers)
    for dataset in run.datasets:
        for family, path in coding_sweep(args.profile, dataset, run.split, run.codecs, run.limit, run.skipped,
                                         run.bitmap_limit, run.workers).items():
            print(f"[coding] {dataset}/{run.split} {family}: {path}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("code", help="encode and decode dataset splits with learned and classical codecs (notebook 03)")
    p.add_argument("--profile", default="demo", help="smoke | demo | paper: defaults from its 03_coding_examples section")
    p.add_argument("--dataset", nargs="+", default=None, help="dataset names (default: the profile's DATASETS)")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--codecs", nargs="+", default=["all"],
                   help="all | classical | learned | a family (jpeg, tcm-tiny-object) | a codec id (jpeg@q30)")
    p.add_argument("--limit", type=int, default=None,
                   help="code only the first N images by name (default: the profile's LIMIT)")
    p.add_argument("--workers", type=int, default=None,
                   help="codecs coded at once, one process each (default: the profile's WORKERS)")
    p.set_defaults(func=_cli)
