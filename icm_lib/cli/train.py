"""``icm train``: the Object-MSE (Eq. 4) and MSE (Eq. 1) lambda sweeps of Shindo et al.

Every option defaults to the ``02_train_codecs`` section of the chosen
profile (``notebooks/params/<profile>.yaml``), so ``icm train --profile demo``
trains the demo's codecs exactly as notebook 02 does. For several GPUs or
processes, run the module under torchrun::

    torchrun --nproc_per_node 4 -m icm_lib.cli.train --profile paper --loss object \\
        --lambdas 0.05 0.02 0.01 0.005 --model tcm-large --data coco

The work is done in :mod:`icm_lib.training`; this module is its command line.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from icm_lib.config import PROFILES, notebook_params
from icm_lib.errors import UserError
from icm_lib.training import distributed
from icm_lib.training.loop import TrainingDiverged
from icm_lib.training.sweep import TrainedCodec, train_sweeps, trained_codecs

__all__ = ["TrainedCodec", "add_cli", "main", "trained_codecs"]

STEM = "02_train_codecs"
# option -> notebook parameter it overrides
OPTIONS = {
    "data": "DATASET", "model": "MODEL", "steps": "STEPS", "base_steps": "BASE_STEPS", "base_lambda": "BASE_LAMBDA", "base_lr": "BASE_LR",
    "batch_size": "BATCH_SIZE", "crop_size": "CROP_SIZE", "lr": "LR", "aux_lr": "AUX_LR", "decay_at": "DECAY_AT",
    "clip_max_norm": "CLIP_MAX_NORM", "checkpoint_every": "CHECKPOINT_EVERY", "val_every": "VAL_EVERY",
    "val_images": "VAL_IMAGES", "init": "INIT", "seed": "SEED", "workers": "WORKERS", "model_kwargs": "MODEL_KWARGS",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="demo", choices=PROFILES, help="fills every default from its 02_train_codecs section")
    p.add_argument("--loss", default="both", choices=("object", "mse", "both"), help="which sweep (default: both)")
    p.add_argument("--lambdas", type=float, nargs="+", help="lambdas of the sweep (default: the profile's, per loss)")
    p.add_argument("--data", help="dataset name in data/<profile>/datasets (shapes, coco, ...)")
    p.add_argument("--model", help="icm_lib.models name (tcm-tiny ... tcm-large)")
    p.add_argument("--model-kwargs", type=_model_kwargs, metavar="KEY=VALUE[,KEY=VALUE]",
                   help="overrides of the model's registry defaults, e.g. N=64,M=96")
    p.add_argument("--steps", type=int, help="steps per codec (fine-tuning steps when a base model is used)")
    p.add_argument("--base-steps", type=int, help="steps of the shared warm-start base model (0: none)")
    p.add_argument("--base-lambda", type=float, help="lambda of the base model (MSE loss)")
    p.add_argument("--base-lr", type=float, help="Adam learning rate of the base model")
    p.add_argument("--batch-size", type=int, help="images per step over all processes")
    p.add_argument("--crop-size", type=int, help="square training crop")
    p.add_argument("--lr", type=float, help="Adam learning rate of the network (TCM: 1e-4)")
    p.add_argument("--aux-lr", type=float, help="Adam learning rate of the quantiles (TCM: 1e-3)")
    p.add_argument("--decay-at", type=float, nargs="*", help="fractions of the steps where the lr drops 10x")
    p.add_argument("--clip-max-norm", type=float, help="gradient clipping (0: off)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--val-every", type=int, help="steps between validations (0: at the end only)")
    p.add_argument("--val-images", type=int, help="val images per intermediate validation (0: all)")
    p.add_argument("--init", help="checkpoint to fine-tune from (e.g. a model trained with MSE)")
    p.add_argument("--init-official", action="store_true", help="--init is an official TCM release checkpoint")
    p.add_argument("--resume", action="store_true", help="continue unfinished runs from their checkpoints")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="DataLoader workers")


def _model_kwargs(text: str) -> dict[str, Any]:
    """``N=64,M=96`` -> ``{"N": 64, "M": 96}`` (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def sweep_params(args: argparse.Namespace) -> dict[str, Any]:
    """The profile's 02_train_codecs parameters with the command-line overrides applied."""
    params = notebook_params(args.profile, STEM)
    params.update({key: getattr(args, opt) for opt, key in OPTIONS.items() if getattr(args, opt) is not None})
    if args.lambdas:
        for loss in _losses(args):
            params[f"{loss.upper()}_LAMBDAS"] = args.lambdas
    if args.init:
        params["BASE_STEPS"] = 0
    params["INIT_OFFICIAL"] = args.init_official
    params["RESUME"] = args.resume
    missing = [k for k in ("MODEL", "DATASET", "STEPS", "OBJECT_LAMBDAS", "MSE_LAMBDAS") if k not in params]
    if missing:
        raise UserError(f"profile {args.profile!r} gives no {', '.join(missing)} for {STEM}; pass them as options")
    return params


def _losses(args: argparse.Namespace) -> tuple[str, ...]:
    return ("object", "mse") if args.loss == "both" else (args.loss,)


def run(args: argparse.Namespace) -> int:
    """Train the sweeps; user-facing failures become one-line errors."""
    params = sweep_params(args)
    ctx = distributed.setup()
    try:
        codecs = train_sweeps(params, _losses(args), ctx)
    except (TrainingDiverged, FileNotFoundError, FileExistsError, ValueError) as err:
        raise UserError(str(err)) from err
    finally:
        distributed.teardown()
    if ctx.is_main:
        for codec in codecs:
            val = codec.summary()["val"]
            print(f"{codec.codec_id:<28} bpp {val['bpp']:.3f}  PSNR {val['psnr']:.2f}  object {val['object_psnr']:.2f}  "
                  f"background {val['background_psnr']:.2f}  {codec.path}")
    return 0


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
