"""``icm bench codec`` and ``icm bench train``: the benchmarks (:mod:`icm_lib.bench_codec`, :mod:`icm_lib.bench_train`).

A benchmark measures; it does not pass or fail.
"""

from __future__ import annotations

import argparse

import torch

from icm_lib import bench_codec, bench_train
from icm_lib.cli.groups import group
from icm_lib.config import PROFILES
from icm_lib.models.entropy_tables import CDF_ROUNDINGS
from icm_lib.training.precision import COMPUTE_DTYPES


def _codec(args: argparse.Namespace) -> int:
    checkpoints = bench_codec.checkpoints_by_model(args.checkpoint or [])
    models = args.models or (["tcm-tiny"] if args.quick else list(bench_codec.MODELS))
    sizes, batches = ([256], [1, 8]) if args.quick else (args.sizes, args.batches)
    steps = min(args.train_steps, 100) if args.quick else args.train_steps
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"icm bench codec: CPU, {torch.get_num_threads()} thread(s), photo crops from scikit-image")
    print(bench_codec.HEADER)
    tables = {
        key: value
        for key, value in (("scale_levels", args.scale_levels), ("cdf_rounding", args.cdf_rounding))
        if value is not None
    }
    rows = bench_codec.bench(models, sizes, batches, checkpoints, steps, tables)
    print("weights: " + "; ".join(sorted({f"{r.model}: {r.weights}" for r in rows})))
    print("bits/estimate: entropy-coded string bits over -sum log2 likelihoods; bpp: whole files, batch 1")
    return 0


def _train(args: argparse.Namespace) -> int:
    path = bench_train.bench_profile(
        args.profile, tuple(args.models or ()), args.crop_size, args.batch_size, args.steps, tuple(args.compute_dtypes)
    )
    print(f"-> {path}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    bench = group(sub, "bench", "benchmarks")
    parser = bench.add_parser("codec", help="encode/decode speed and real bits vs entropy estimate")
    parser.add_argument("--models", nargs="+", help=f"registry names (default: {' '.join(bench_codec.MODELS)})")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512], help="square image sides")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], help="batch sizes")
    parser.add_argument("--checkpoint", action="append", help="trained weights for the model they name (repeatable)")
    parser.add_argument("--train-steps", type=int, default=300, help="quick RD steps for small random models")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tcm-tiny at 256x256 only, <= 100 training steps")
    parser.add_argument("--scale-levels", type=int, help="code TCMs with this many scales (default: each config's)")
    parser.add_argument(
        "--cdf-rounding", choices=CDF_ROUNDINGS, help="code TCMs with this pmf rounding (default: each config's)"
    )
    parser.set_defaults(func=_codec)

    p = bench.add_parser("train", help="training images/s and peak memory, float32 and bfloat16")
    p.add_argument(
        "--profile",
        default="demo",
        choices=PROFILES,
        help="takes the crop size and batch from its 02_train_codecs section",
    )
    p.add_argument("--models", nargs="+", help="registry names (default: the profile's MODEL, with its MODEL_KWARGS)")
    p.add_argument(
        "--compute-dtypes",
        nargs="+",
        choices=list(COMPUTE_DTYPES),
        default=list(COMPUTE_DTYPES),
        help="the transforms' dtype in training (icm_lib.training.precision); float32 first gives the ratios",
    )
    p.add_argument("--crop-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.set_defaults(func=_train)
