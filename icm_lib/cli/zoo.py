"""``icm zoo list|verify|train|export|prune|merge|precision|detectors``: the trained codecs shipped in ``zoo/<profile>`` (:mod:`icm_lib.zoo`).

``python -m icm_lib.cli.zoo ...`` runs the same commands without the rest of the CLI, whose
other commands import packages a bare GPU machine lacks (ultralytics, papermill): this module
imports only :mod:`icm_lib.zoo`, the profiles and the argparse helpers.
"""

from __future__ import annotations

import argparse
import math
import sys

from icm_lib import zoo
from icm_lib.cli.groups import group
from icm_lib.config import PROFILES
from icm_lib.errors import UserError
from icm_lib.training.config import check_decay_at
from icm_lib.training.precision import COMPUTE_DTYPES


def _list(args: argparse.Namespace) -> int:
    print(
        f"{'name':<34} {'loss':<6} {'lambda':>7} {'steps':>15} {'bpp':>6} {'object dB':>9} {'bg dB':>6} {'in objects':>10}"
        f" {'empty bpp':>9}"
    )
    known = {e["name"]: e for e in zoo.entries(args.profile)}
    for e in known.values():
        val = e.get("val", {})
        steps = f"{e['steps']}/{e['target_steps']}"
        print(
            f"{e['name']:<34} {e['loss']:<6} {e['lmbda']:>7g} {steps:>15} {val.get('bpp', float('nan')):>6.3f} "
            f"{val.get('object_psnr', float('nan')):>9.2f} {val.get('background_psnr', float('nan')):>6.2f} "
            f"{val.get('object_bit_share', float('nan')):>10.1%} {val.get('empty_bpp', float('nan')):>9.3f}"
            + (" *" if zoo.source_changed(e, known) else "")
        )
    if any(zoo.source_changed(e, known) for e in known.values()):
        print("* fine-tuned from an earlier state of its source than the zoo's: 'icm zoo train' fine-tunes it again")
    for family in zoo.effect(args.profile):
        if len(family["codecs"]) < 2:  # no curve: BD-PSNR needs two rates
            print(f"\n{family['family']}: one codec so far, no curve to compare at equal bpp (BD-PSNR)")
        elif not math.isfinite(family["object_bd_psnr"]):
            print(f"\n{family['family']}: no curve of the MSE codecs ({family['anchor']}) to compare at equal bpp")
        else:
            print(
                f"\n{family['family']} against the MSE codecs at equal bpp (BD-PSNR): in the objects "
                f"{family['object_bd_psnr']:+.2f} dB, background {family['background_bd_psnr']:+.2f} dB, "
                f"whole image {family['whole_bd_psnr']:+.2f} dB"
            )
        for c in family["codecs"]:
            ratio = c["empty_ratio"]
            print(
                f"  {c['name']:<32} {c['bpp']:.3f} bpp; without objects {c['empty_bpp']:.3f} bpp, "
                + (
                    f"{ratio:.2f} of the MSE codecs' at {c['bpp']:.3f} bpp"
                    if math.isfinite(ratio)
                    else f"no curve of the MSE codecs ({family['anchor']}) to compare with"
                )
            )
    return 0


def _verify(args: argparse.Namespace) -> int:
    problems = zoo.verify(args.profile)
    for name, problem in problems:
        print(f"{name}: {problem}")
    if problems:
        raise UserError(f"{len(problems)} of {len(zoo.entries(args.profile))} zoo codecs failed verification")
    print(f"{len(zoo.entries(args.profile))} codecs verified: files match the manifest, trained on this data")
    return 0


def _train(args: argparse.Namespace) -> int:
    try:  # before any data is generated or checkpoint read
        check_decay_at(args.decay_at or (), "--decay-at")
    except ValueError as err:
        raise UserError(str(err)) from None
    params = zoo.recipe(args.profile, args.recipe)
    for key, value in (
        ("PROCESSES", args.processes),
        ("STEPS", args.steps),
        ("VAL_EVERY", args.val_every),
        ("BATCH_SIZE", args.batch_size),
        ("DECAY_AT", args.decay_at),
        ("TIME_BUDGET", args.time_budget),
        ("CACHE_IMAGES", args.cache_images or None),
        ("COMPUTE_DTYPE", args.compute_dtype),
    ):
        if value is not None:
            params[key] = value
    served = zoo.recipe(args.profile) if args.recipe else None
    zoo.train(params, chunk=args.chunk, rounds=args.rounds, only=args.only, served=served)
    return _list(args)


def _precision(args: argparse.Namespace) -> int:
    params = zoo.recipe(args.profile)
    print(f"the runs' float32 weights against the same weights stored in {zoo.PRECISION}, {args.images} val images")
    print(f"{'name':<34} {'bpp':>14} {'PSNR dB':>14} {'object dB':>14} {'in objects':>16} {'empty bpp':>14}")
    keys = ("bpp", "psnr", "object_psnr", "object_bit_share", "empty_bpp")
    for row in zoo.precision_effect(params, args.images):
        full, stored = row["float32"], row[zoo.PRECISION]
        cells = [f"{full[k]:.4f}{stored[k] - full[k]:+.4f}" for k in keys]
        print(f"{row['name']:<34} " + " ".join(f"{c:>14}" for c in cells))
    print("each cell: float32 value, then the stored weights' difference")
    return 0


def _export(args: argparse.Namespace) -> int:
    params = zoo.recipe(args.profile, args.recipe)
    zoo.export(args.profile, params, zoo.zoo_runs(params), zoo.recipe(args.profile) if args.recipe else None)
    return _list(args)


def _prune(args: argparse.Namespace) -> int:
    names = zoo.prune(args.profile, zoo.recipe(args.profile), dry_run=not args.yes)
    for name in names:
        print(f"{name}: {'dropped' if args.yes else 'would be dropped (--yes drops it)'}")
    print(f"{len(names)} codecs that are not the recipe's {'dropped' if args.yes else 'to drop'}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    names = zoo.merge(args.profile, args.folder)
    print(f"{len(names)} codecs taken from {args.folder}/{args.profile} into {zoo.zoo_dir(args.profile)}")
    return _list(args)


def _detectors(args: argparse.Namespace) -> int:
    from icm_lib.evaluate.recognition import shipped

    found = shipped.clean_runs(args.profile, args.datasets)
    if not found:
        raise UserError(f"no finished clean detectors of {', '.join(args.datasets)}: run notebook 04 first")
    for name in shipped.export(args.profile, found):
        item = shipped.find(args.profile, *name.split("-", 1))
        print(f"{name:20s} {item['bytes'] / 1e6:6.1f} MB  {item['sha256'][:16]}  {shipped.shipped_dir(args.profile)}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """``icm zoo list|verify|train|export|prune|merge|precision|detectors``."""
    commands = group(sub, "zoo", "the trained codecs shipped in zoo/<profile>: list, verify, train, export")
    for name, func, help in (
        ("list", _list, "the zoo's codecs with their last validation"),
        ("verify", _verify, "check every file's sha256 and the data fingerprint"),
        ("train", _train, "train (or continue) every codec of the profile's recipe, then export"),
        ("export", _export, "write the runs' current weights, logs and manifest into the zoo"),
        ("prune", _prune, "drop the codecs that are no codecs of the profile's recipe (after it changed model)"),
        ("merge", _merge, "take the codecs of another zoo folder (e.g. zoo-next) into the zoo, as recorded there"),
        ("precision", _precision, "measure what storing the weights in half precision changes (runs on this machine)"),
        ("detectors", _detectors, "ship the clean detectors of this machine's run (notebook 04) with the zoo"),
    ):
        p = commands.add_parser(name, help=help)
        p.add_argument("--profile", default="demo", choices=PROFILES)
        p.set_defaults(func=func)
        if name in ("train", "export"):
            p.add_argument(
                "--recipe",
                metavar="YAML",
                help="settings that replace the profile's recipe (02_train_codecs), e.g. the next zoo's while it "
                "is trained: zoo/demo/next-recipe.yaml; the manifest keeps the profile's as the recipe served",
            )
        if name == "train":
            p.add_argument(
                "--chunk", type=int, default=2000, help="steps per codec per round (each round ends in an export)"
            )
            p.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (0: until finished)")
            p.add_argument(
                "--processes", type=int, help="codecs trained side by side (default: the profile's PROCESSES)"
            )
            p.add_argument("--steps", type=int, help="steps per codec (default: the recipe's STEPS)")
            p.add_argument(
                "--only",
                nargs="+",
                metavar="PATTERN",
                help="train just these codecs (names or shell patterns, e.g. 'mbt2018-mean-object-*'); "
                "the others stay as they are",
            )
            p.add_argument("--val-every", type=int, help="steps between validations (default: the recipe's VAL_EVERY)")
            p.add_argument("--batch-size", type=int, help="images per step (default: the recipe's BATCH_SIZE)")
            p.add_argument(
                "--decay-at",
                type=float,
                nargs="+",
                metavar="FRACTION",
                help="where the lr drops 10x, as fractions of --steps (default: the recipe's DECAY_AT); a codec "
                "continued with a decay point it has passed stays at the decayed rate, e.g. --steps 45000 "
                "--decay-at 0.5 continues a 40,000-step codec at 1e-4 instead of going back to 1e-3",
            )
            p.add_argument(
                "--time-budget",
                type=float,
                metavar="SECONDS",
                help="train every codec for this long from now, in one round: each fixes its steps from its "
                "measured speed, the lr decay placed at the recipe's fractions of them",
            )
            p.add_argument("--cache-images", action="store_true", help="keep the decoded training images in memory")
            p.add_argument(
                "--compute-dtype",
                choices=list(COMPUTE_DTYPES),
                help="the transforms' dtype in training; bfloat16 is faster where the processor has bfloat16 "
                "units (icm bench train measures it) (default: the recipe's COMPUTE_DTYPE)",
            )
        if name == "merge":
            p.add_argument("folder", help="the other zoo folder, holding <profile>/manifest.json (e.g. zoo-next)")
        if name == "prune":
            p.add_argument("--yes", action="store_true", help="drop them (without: list what would be dropped)")
        if name == "precision":
            p.add_argument("--images", type=int, default=40, help="val images with objects to code per codec")
        if name == "detectors":
            p.add_argument("--datasets", nargs="+", default=["shapes", "aerial"], help="generated datasets")


def main(argv: list[str] | None = None) -> int:
    """``python -m icm_lib.cli.zoo``: the ``icm zoo`` commands without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m icm_lib.cli.zoo", description=zoo.__doc__.splitlines()[0])
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["zoo", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"icm zoo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
