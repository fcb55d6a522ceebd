"""``icm train``: the lambda sweeps of Shindo et al., one per registered loss (Object-MSE Eq. 4, MSE Eq. 1, ...).

Every option is a setting of :class:`icm_lib.config.TrainingStage` and defaults
to the ``02_train_codecs`` section of the chosen profile
(``notebooks/params/<profile>.yaml``), so ``icm train --profile demo`` trains
the demo's codecs exactly as notebook 02 does. For several GPUs or processes,
run the module under torchrun::

    torchrun --nproc_per_node 4 -m icm_lib.cli.train --profile paper --loss object \\
        --lambdas 0.05 0.02 0.01 0.005 --model tcm-large --dataset coco

The work is done in :mod:`icm_lib.training`; this module is its command line.
"""

from __future__ import annotations

import argparse
import sys

from icm_lib.cli.groups import stage_from
from icm_lib.config import PROFILES, TrainingStage
from icm_lib.errors import UserError
from icm_lib.losses import CRITERIA
from icm_lib.notebook import record
from icm_lib.training import distributed
from icm_lib.training.loop import TrainingDiverged
from icm_lib.training.sweep import TrainedCodec, finished_codecs, train_sweeps, trained_codecs

__all__ = ["TrainedCodec", "add_cli", "main", "trained_codecs"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--profile``, the sweeps to run, and one flag per :class:`icm_lib.config.TrainingStage` setting."""
    p.add_argument(
        "--profile", default="demo", choices=PROFILES, help="fills every default from its 02_train_codecs section"
    )
    p.add_argument(
        "--loss",
        nargs="+",
        choices=sorted(CRITERIA),
        metavar="LOSS",
        help=f"which sweeps, by registered loss ({', '.join(CRITERIA)}; default: the profile's lambdas)",
    )
    p.add_argument(
        "--lambdas", type=float, nargs="+", help="lambdas of each chosen sweep (default: the profile's, per loss)"
    )
    p.add_argument("--resume", action="store_true", help="continue unfinished runs from their checkpoints")
    TrainingStage.add_arguments(p, skip=("zoo", "lambdas"))


def stage_of(args: argparse.Namespace) -> TrainingStage:
    """The profile's training stage with the command-line settings applied."""
    overrides = {}
    if args.lambdas:
        losses = args.loss or list(TrainingStage.from_profile(args.profile).lambdas)
        overrides["lambdas"] = {loss: args.lambdas for loss in losses}
    if args.init:
        overrides["base_steps"] = 0
    return stage_from(TrainingStage, args, **overrides)


def run(args: argparse.Namespace) -> int:
    """Train the sweeps; user-facing failures become one-line errors."""
    stage = stage_of(args)
    ctx = distributed.setup()
    try:
        codecs = train_sweeps(stage, tuple(args.loss) if args.loss else None, ctx, resume=args.resume)
    except (TrainingDiverged, FileNotFoundError, FileExistsError, ValueError) as err:
        raise UserError(str(err)) from err
    finally:
        distributed.teardown()
    if ctx.is_main:
        record_codecs(stage, tuple(args.loss) if args.loss else None)
        for codec in codecs:
            val = codec.summary()["val"]
            print(
                f"{codec.codec_id:<28} bpp {val['bpp']:.3f}  PSNR {val['psnr']:.2f}  object {val['object_psnr']:.2f}  "
                f"background {val['background_psnr']:.2f}  {codec.path}"
            )
    return 0


def record_codecs(stage: TrainingStage, losses: tuple[str, ...] | None = None) -> None:
    """Write notebook 02's record of the recipe's finished codecs (of the sweeps trained, ``losses``), as the
    notebook does, so that the coding stage (notebook 03, ``icm code``) codes what was trained here."""
    codecs = finished_codecs(stage, losses)
    record(
        "02_train_codecs",
        stage.profile,
        {
            "codecs": [c.codec_id for c in codecs],
            "checkpoints": [c.path for c in codecs],
            "zoo": False,
            "config": stage.to_params(),
            "command": "icm train",
        },
    )


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the object and MSE codec sweeps (resumable; torchrun for several GPUs)")
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m icm_lib.cli.train`` (what torchrun starts): the same options as ``icm train``."""
    parser = argparse.ArgumentParser(prog="python -m icm_lib.cli.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"icm train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
