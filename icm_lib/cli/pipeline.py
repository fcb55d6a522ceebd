"""``icm pipeline``: the numbered notebooks in order with papermill (:mod:`icm_lib.pipeline`)."""

from __future__ import annotations

import argparse
import time

from icm_lib.config import PROFILES
from icm_lib.errors import UserError
from icm_lib.paths import runs_dir
from icm_lib.pipeline import NotebookFailure, run_pipeline


def _cli(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        done = run_pipeline(args.profile, args.only, stream=not args.quiet)
    except NotebookFailure as failure:
        raise UserError(str(failure)) from failure
    print(
        f"[pipeline:{args.profile}] {len(done)} notebooks in {time.perf_counter() - start:.0f} s; executed copies in {runs_dir(args.profile)}"
    )
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the numbered notebooks in order with papermill")
    p.add_argument("--profile", default="demo", choices=PROFILES)
    p.add_argument(
        "--only", nargs="+", metavar="PREFIX", help="run only notebooks whose name starts with these (e.g. 01 02)"
    )
    p.add_argument(
        "--quiet", action="store_true", help="show papermill's cell progress only, not the notebooks' own output"
    )
    p.set_defaults(func=_cli)
