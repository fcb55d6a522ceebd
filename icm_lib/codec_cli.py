"""``icm encode`` and ``icm decode``: an image file to a bitstream file and back.

Both refuse what would harm before doing it:

- sizes: the image's size (read from its header, pixels not yet decoded) or the
  size a bitstream claims, against :mod:`icm_lib.limits`, then the memory the
  coding would take (:func:`icm_lib.bitstream.check_size`);
- outputs (:func:`icm_lib.io.check_output`): never the input or the
  checkpoint, never a folder, never an existing file of another kind (for
  ``encode`` anything but a bitstream, for ``decode`` anything but an image)
  unless ``--force``.

An image that is not 8-bit RGB is converted and the conversion said: grayscale
and palette images become RGB, alpha is dropped, 16-bit grayscale samples are
scaled to 8 bits (``round(v * 255 / 65535)``, not clipped to white), 16-bit
colour samples keep their high byte (PIL's reading, within one level of that);
32-bit integer and float images are refused.

An ROI codec (:mod:`icm_lib.models.roi`) codes an object mask given with
``--mask``: missing, of another size or not binary, it is refused in one line.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from icm_lib import limits
from icm_lib.bitstream import bits_per_pixel, check_size, decode, encode, is_bitstream, read_header, to_uint8
from icm_lib.checkpoint import load_checkpoint
from icm_lib.errors import UserError
from icm_lib.io import check_output, open_image, pil_bomb_check_off, write_output

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def is_image(path: Path) -> bool:
    """Whether PIL recognises ``path`` as an image (its header only)."""
    try:
        open_image(path).close()
    except UserError:
        return False
    return True


def to_rgb8(img, name: str) -> tuple[np.ndarray, str | None]:
    """HxWx3 uint8 RGB of an opened image (its pixels are read now), and a note of what was converted."""
    mode = img.mode
    sixteen_bit_colour = mode not in _SIXTEEN_BIT and any(";16" in str(tile.args) for tile in img.tile)
    try:
        with pil_bomb_check_off():
            img.load()
            if mode in _SIXTEEN_BIT:
                gray = (np.asarray(img).astype(np.uint32) * 255 + 32767) // 65535
                note = f"{name} is a 16-bit grayscale image ({mode}): scaled to 8 bits and coded as RGB"
                return np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2), note
            if mode in ("I", "F"):
                kind = "integer" if mode == "I" else "floating-point"
                raise UserError(f"{name} is a 32-bit {kind} image ({mode}): convert it to 8-bit RGB first")
            rgb = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f"cannot read image {name}: {str(err).splitlines()[0][:120]}") from None
    notes = (
        [f"{name} is a 16-bit {mode} image: reduced to 8 bits (the high byte of each sample)"]
        if sixteen_bit_colour
        else []
    )
    if mode != "RGB":
        alpha = "A" in mode or "transparency" in img.info
        notes.append(f"{name} is a {mode} image: coded as RGB" + (", alpha dropped" if alpha else ""))
    return np.asarray(rgb), "; ".join(notes) or None


def read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """HxWx3 uint8 RGB of an image file within :mod:`icm_lib.limits`, and a note when it was converted."""
    with open_image(Path(path)) as img:
        limits.check_image_size(img.height, img.width, f"image {Path(path).name}")
        return to_rgb8(img, Path(path).name)


def read_object_mask(path: Path, width: int, height: int) -> np.ndarray:
    """The HxW bool object mask of an ROI codec from an image file of the image's size, 0 = background and
    1 or 255 = object (a 1-bit, grayscale or palette PNG); anything else is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"mask not found: {path}")
    with open_image(path) as img:
        if (img.width, img.height) != (width, height):
            raise UserError(
                f"mask {path.name} is {img.width}x{img.height}, the image {width}x{height}: they must match"
            )
        try:
            values = np.asarray(img.convert("L") if img.mode in ("1", "P") else img)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read mask {path.name}: {str(err).splitlines()[0][:120]}") from None
    if values.ndim != 2 or not (np.isin(values, (0, 1)).all() or np.isin(values, (0, 255)).all()):
        raise UserError(
            f"mask {path.name} is not binary: one channel of 0 (background) and 1 or 255 (objects) expected"
        )
    return values > 0


def _encode_cli(args: argparse.Namespace) -> int:
    source, output, checkpoint = Path(args.input), Path(args.output), Path(args.checkpoint)
    check_output(output, [source, checkpoint], ("a bitstream", is_bitstream), args.force)
    with open_image(source) as img:
        limits.check_image_size(img.height, img.width, f"encoding {source.name}")
        mask = read_object_mask(Path(args.mask), img.width, img.height) if args.mask else None
        model, meta, _ = load_checkpoint(checkpoint)
        check_size(model, img.height, img.width, "encoding")
        image, note = to_rgb8(img, source.name)
    if note:
        print(f"icm: note: {note}", file=sys.stderr)
    data = encode(model, image, model_name=meta["model"], mask=mask)
    write_output(output, data)
    h, w = image.shape[:2]
    print(f"{output}: {w}x{h}, {len(data)} bytes, {bits_per_pixel(data, h, w):.4f} bpp ({meta['model']})")
    return 0


def _decode_cli(args: argparse.Namespace) -> int:
    source, output, checkpoint = Path(args.input), Path(args.output), Path(args.checkpoint)
    fmt = Image.registered_extensions().get(output.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for {output} (use .png)")
    check_output(output, [source, checkpoint], ("an image", is_image), args.force)
    if not source.is_file():
        raise UserError(f"bitstream not found: {source}")
    limits.MAX_MEMORY.check(source.stat().st_size, f"bitstream {source}", "a file of ")
    data = source.read_bytes()
    read_header(data)  # a bad file is refused before the checkpoint is even loaded
    model, _, _ = load_checkpoint(checkpoint)
    image = to_uint8(decode(model, data))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    write_output(output, buffer.getvalue())
    print(f"{output}: {image.shape[1]}x{image.shape[0]}")
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
        limits.add_arguments(parser)
    enc.set_defaults(func=_encode_cli)
    dec.set_defaults(func=_decode_cli)
