"""Image files to bitstream files and back (what ``icm encode`` and ``icm decode`` do).

:func:`encode_file` and :func:`decode_file` refuse what would harm before doing it:

- sizes: the image's size (read from its header, pixels not yet decoded) or the
  size a bitstream claims, against :mod:`icm_lib.limits`, then the memory the
  coding would take (:func:`icm_lib.bitstream.check_size`);
- outputs (:func:`icm_lib.io.check_output`): never the input or the
  checkpoint, never a folder, never an existing file of another kind (for
  ``encode`` anything but a bitstream, for ``decode`` anything but an image)
  unless ``force`` (``icm encode --force``).

An image that is not 8-bit RGB is converted and the conversion said: grayscale
and palette images become RGB, alpha is dropped, 16-bit grayscale samples are
scaled to 8 bits (``round(v * 255 / 65535)``, not clipped to white), 16-bit
colour samples keep their high byte (PIL's reading, within one level of that);
32-bit integer and float images are refused.

An ROI codec (:mod:`icm_lib.models.roi`) codes an object mask given with
``--mask``: missing, of another size or not binary, it is refused in one line.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CodedFile:
    """What :func:`encode_file` or :func:`decode_file` wrote."""

    path: Path  # the file written
    height: int  # the image's size in pixels
    width: int
    bytes: int  # the bitstream's size
    bpp: float  # bits per pixel of the bitstream file, header included
    model: str | None = None  # the codec's registry name (encoding)


def encode_file(
    source: Path,
    output: Path,
    checkpoint: Path,
    force: bool = False,
    note: Callable[[str], None] | None = None,
    mask: Path | None = None,
) -> CodedFile:
    """Code the image file ``source`` into the bitstream file ``output`` with a trained codec.

    Everything is checked before anything is written or decoded: ``output`` (never the input or
    the checkpoint; an existing file that is not a bitstream only with ``force``), the image's
    size from its header, then the memory the coding would take. ``note`` is told, before the
    coding starts, what was converted to make the image 8-bit RGB. ``mask``: the object mask an ROI
    codec needs (:func:`read_object_mask`), coded into the bitstream.

    Raises:
        UserError: any of those checks, an unreadable image or checkpoint.
    """
    source, output, checkpoint = Path(source), Path(output), Path(checkpoint)
    check_output(output, [source, checkpoint], ("a bitstream", is_bitstream), force)
    with open_image(source) as img:
        limits.check_image_size(img.height, img.width, f"encoding {source.name}")
        mask = read_object_mask(Path(mask), img.width, img.height) if mask else None
        model, meta, _ = load_checkpoint(checkpoint)
        check_size(model, img.height, img.width, "encoding")
        image, converted = to_rgb8(img, source.name)
    if converted and note is not None:
        note(converted)
    data = encode(model, image, model_name=meta["model"], mask=mask)
    write_output(output, data)
    h, w = image.shape[:2]
    return CodedFile(output, h, w, len(data), bits_per_pixel(data, h, w), meta["model"])


def decode_file(source: Path, output: Path, checkpoint: Path, force: bool = False) -> CodedFile:
    """Decode the bitstream file ``source`` into the image file ``output`` (its format from the suffix).

    The output is checked first (an existing file that is not an image only with ``force``), then the
    bitstream's file size against the memory limit and its header, before the checkpoint is loaded.

    Raises:
        UserError: an unknown image suffix, any of those checks, a bad bitstream or checkpoint.
    """
    source, output, checkpoint = Path(source), Path(output), Path(checkpoint)
    fmt = Image.registered_extensions().get(output.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for {output} (use .png)")
    check_output(output, [source, checkpoint], ("an image", is_image), force)
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
    h, w = image.shape[:2]
    return CodedFile(output, h, w, len(data), bits_per_pixel(data, h, w))
