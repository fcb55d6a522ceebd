"""``icm encode`` and ``icm decode``: an image file to a bitstream file and back.

The work, and every check made before it, is :func:`icm_lib.file_coding.encode_file` and
:func:`icm_lib.file_coding.decode_file`.
"""

from __future__ import annotations

import argparse
import sys

from icm_lib.cli.groups import add_limit_arguments
from icm_lib.file_coding import decode_file, encode_file


def _note(text: str) -> None:
    print(f"icm: note: {text}", file=sys.stderr)


def _encode_cli(args: argparse.Namespace) -> int:
    coded = encode_file(args.input, args.output, args.checkpoint, args.force, note=_note, mask=args.mask)
    print(f"{coded.path}: {coded.width}x{coded.height}, {coded.bytes} bytes, {coded.bpp:.4f} bpp ({coded.model})")
    return 0


def _decode_cli(args: argparse.Namespace) -> int:
    coded = decode_file(args.input, args.output, args.checkpoint, args.force)
    print(f"{coded.path}: {coded.width}x{coded.height}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    enc = sub.add_parser("encode", help="code an image into a bitstream file with a trained codec")
    enc.add_argument("input", help="image file (any size; grayscale, 16-bit and RGBA are coded as 8-bit RGB)")
    enc.add_argument("output", help="bitstream file to write (.icm)")
    enc.add_argument("--checkpoint", required=True, help="codec checkpoint (icm train output)")
    enc.add_argument(
        "--mask",
        help="object mask of an ROI codec (mbt2018-mean-roi): a PNG of the image's size, "
        "0 = background, 1 or 255 = object; coded in the bitstream",
    )
    dec = sub.add_parser("decode", help="decode a bitstream file into an image")
    dec.add_argument("input", help="bitstream file (.icm)")
    dec.add_argument("output", help="image file to write (.png)")
    dec.add_argument("--checkpoint", required=True, help="the checkpoint that encoded it")
    for parser, kind in ((enc, "a bitstream"), (dec, "an image")):
        parser.add_argument("--force", action="store_true", help=f"overwrite an existing output that is not {kind}")
        add_limit_arguments(parser)
    enc.set_defaults(func=_encode_cli)
    dec.set_defaults(func=_decode_cli)
