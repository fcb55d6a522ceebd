"""``icm data`` and ``icm masks``: build datasets in the shared layout and their object masks.

``icm data synth --profile smoke|demo`` generates the embedded datasets,
``icm data coco ...`` and ``icm data visdrone ...`` bring real data into the
layout, ``icm masks --annotations A.json --images DIR --out DIR [--from boxes]``
writes object masks for any COCO file.
"""

from __future__ import annotations

import argparse

from icm_lib import limits
from icm_lib.cli_groups import group
from icm_lib.errors import UserError

# Each command imports its data module when it runs: building the `icm` parser then costs no
# OpenCV and no dataset generator. None of them imports this module: no cycle is hidden.


def _synth(args: argparse.Namespace) -> int:
    from icm_lib.data.masks import build_masks
    from icm_lib.data.synth import SEED, synthesize_profile

    try:
        layouts = synthesize_profile(args.profile, seed=args.seed if args.seed is not None else SEED)
    except ValueError as err:
        raise UserError(str(err)) from None
    for layout in layouts.values():
        for split in ("train", "val"):
            build_masks(layout, split)
        print(f"{layout.name}: {layout.root}")
    return 0


def _coco(args: argparse.Namespace) -> int:
    from icm_lib.data.coco import import_coco

    layout = import_coco(args.train_images, args.val_images, args.annotations, args.profile, name=args.name)
    print(f"COCO2017 in the layout: {layout.root}")
    return 0


def _visdrone(args: argparse.Namespace) -> int:
    from icm_lib.data.visdrone import import_visdrone

    layout = import_visdrone(args.root, args.profile, name=args.name)
    print(f"VisDrone-DET in the layout: {layout.root}")
    return 0


def _masks(args: argparse.Namespace) -> int:
    from icm_lib.data.masks import write_masks

    write_masks(args.annotations, args.images, args.out, from_boxes=args.from_ == "boxes")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    data = group(sub, "data", "build datasets in the shared layout (embedded, COCO2017, VisDrone)")
    p = data.add_parser("synth", help="generate the embedded shapes and aerial datasets (and their masks)")
    p.add_argument("--profile", required=True, choices=("smoke", "demo"))
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: the project's)")
    p.set_defaults(func=_synth)

    p = data.add_parser(
        "coco",
        help="bring COCO2017 into the layout (per-image symlinks, linked annotations, YOLO labels); masks: notebook 01 or icm masks",
    )
    p.add_argument("--train-images", required=True, help="folder of train2017 images")
    p.add_argument("--val-images", required=True, help="folder of val2017 images")
    p.add_argument(
        "--annotations", required=True, help="folder holding instances_train2017.json and instances_val2017.json"
    )
    p.add_argument("--profile", default="paper")
    p.add_argument("--name", default="coco", help="dataset name under data/<profile>/datasets/")
    p.set_defaults(func=_coco)

    p = data.add_parser(
        "visdrone",
        help="convert VisDrone2019-DET to the layout (COCO JSON, YOLO labels); masks: notebook 01 or icm masks",
    )
    p.add_argument("--root", required=True, help="folder holding VisDrone2019-DET-train/ and VisDrone2019-DET-val/")
    p.add_argument("--profile", default="paper")
    p.add_argument("--name", default="visdrone", help="dataset name under data/<profile>/datasets/")
    p.set_defaults(func=_visdrone)

    p = sub.add_parser("masks", help="write object masks (0/255 PNG per image) from a COCO annotation file")
    p.add_argument("--annotations", required=True, help="COCO instances JSON")
    p.add_argument("--images", required=True, help="folder of the images it lists")
    p.add_argument("--out", required=True, help="output folder for <image stem>.png masks")
    p.add_argument(
        "--from",
        dest="from_",
        choices=("segmentation", "boxes"),
        default="segmentation",
        help="fill instance segmentations (default) or boxes",
    )
    limits.add_arguments(p, limits.MAX_PIXELS, limits.MAX_SIDE)
    p.set_defaults(func=_masks)
