"""Bitstream files of the learned codecs: the rates this project reports are their sizes.

A file is a header followed by the entropy-coded strings of ``model.compress``
(CompressAI's rANS coder) and a CRC-32 of everything before it::

    magic "ICMB" | format version (u8) | model name (u8 length + utf-8)
    | checkpoint fingerprint (8 bytes) | original height, width (u16 each)
    | string count (u8) | string lengths (u32 each) | strings | CRC-32 (u32)

Bits per pixel = 8 * file size / (H * W), header included. Images of any size
are replicate-padded to a multiple of 64 before coding and cropped back after
decoding. The decoder refuses a file made by other weights or other coding
tables (the fingerprint hashes the whole state_dict, scale table and CDF
tables included: a tcm-tiny with 64 scales and one with 256 never decode
each other's files), a corrupted or truncated file (CRC, lengths) and absurd
dimensions, before decoding anything.

Determinism: the decoder must derive the very CDF indexes the encoder used
from its own float computation of the entropy model. Coding therefore runs
one image at a time with one intra-op thread (restored afterwards): encoder
and decoder execute identical kernels on identical inputs, whatever the
caller's thread setting, and two processes decode identical pixels. (With
different thread counts we saw one-level pixel differences from the
synthesis transform, and a scale within float rounding of a scale-table
boundary could change an index.) Same CPU kind assumed: the header cannot
detect a machine whose float kernels round differently.
"""
from __future__ import annotations

import struct
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from icm_lib.cli import UserError
from icm_lib.io import write_atomic

MAGIC = b"ICMB"
FORMAT_VERSION = 1
PAD_MULTIPLE = 64
MAX_SIDE = 16384  # larger headers are refused before any allocation
MAX_PIXELS = 64 * 2**20


class BitstreamError(UserError):
    """A bitstream that cannot be decoded (corrupted, truncated, other weights)."""


@dataclass
class Header:
    """What a bitstream says about itself."""

    model_name: str
    fingerprint: str  # 16 hex digits: icm_lib.checkpoint.model_fingerprint of the encoding weights
    height: int
    width: int
    string_lengths: list[int]


def model_fingerprint(model: nn.Module) -> str:
    """:func:`icm_lib.checkpoint.model_fingerprint`, cached until a weight changes in place."""
    from icm_lib.checkpoint import model_fingerprint as compute

    signature = tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in model.state_dict().values())
    cached = getattr(model, "_icm_fingerprint", None)
    if cached is None or cached[0] != signature:
        cached = (signature, compute(model))
        model._icm_fingerprint = cached
    return cached[1]


@contextmanager
def _one_thread():
    """Run torch with one intra-op thread, then restore the caller's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def bits_per_pixel(data: bytes, height: int, width: int) -> float:
    """Rate of a whole file: 8 * bytes / pixels."""
    return 8 * len(data) / (height * width)


def to_tensor(image) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] from a [3,H,W]/[1,3,H,W] float tensor or an HxWx3 uint8 array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 array, got {image.dtype} {image.shape}")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    if not torch.is_tensor(image) or image.shape[-3] != 3 or image.dim() not in (3, 4):
        raise ValueError("expected a [3, H, W] float tensor in [0, 1] or an HxWx3 uint8 array")
    return image.reshape(1, *image.shape[-3:]).float()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """HxWx3 uint8 from a [3, H, W] float tensor in [0, 1]."""
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def _pack_header(header: Header) -> bytes:
    name = header.model_name.encode()
    if len(name) > 255 or len(header.string_lengths) > 255:
        raise ValueError("model name or string count too long for the header")
    parts = [MAGIC, struct.pack("<BB", FORMAT_VERSION, len(name)), name, bytes.fromhex(header.fingerprint),
             struct.pack("<HHB", header.height, header.width, len(header.string_lengths)),
             struct.pack(f"<{len(header.string_lengths)}I", *header.string_lengths)]
    return b"".join(parts)


def encode(model: nn.Module, image, model_name: str | None = None, fingerprint: str | None = None) -> bytes:
    """Code one image into a bitstream file's bytes.

    Args:
        model: a CompressAI-style model with CDF tables (``update()`` done, as after load_checkpoint).
        image: [3, H, W] float tensor in [0, 1] or HxWx3 uint8 array, any size.
        model_name, fingerprint: recorded in the header; default to the model's registry
            name and :func:`model_fingerprint`.
    Returns:
        The file's bytes; ``bits_per_pixel(data, H, W)`` is its rate.
    """
    x = to_tensor(image)
    height, width = x.shape[-2:]
    if not (0 < height <= min(MAX_SIDE, 65535) and 0 < width <= min(MAX_SIDE, 65535)):
        raise UserError(f"image of {height}x{width} pixels: sides must be 1..{MAX_SIDE}")
    was_training = model.training
    model.eval().update(force=False)
    x = F.pad(x, (0, (-width) % PAD_MULTIPLE, 0, (-height) % PAD_MULTIPLE), mode="replicate")
    with torch.no_grad(), _one_thread():
        out = model.compress(x)
    model.train(was_training)
    if tuple(out["shape"]) != _z_shape(height, width):
        raise RuntimeError(f"{type(model).__name__}: unexpected hyper-latent shape {tuple(out['shape'])}")
    strings = [s[0] for s in out["strings"]]
    header = Header(model_name or getattr(model, "registry_name", type(model).__name__),
                    fingerprint or model_fingerprint(model), height, width, [len(s) for s in strings])
    body = _pack_header(header) + b"".join(strings)
    return body + struct.pack("<I", zlib.crc32(body))


def _z_shape(height: int, width: int) -> tuple[int, int]:
    return -(-height // PAD_MULTIPLE), -(-width // PAD_MULTIPLE)


class _Reader:
    """Bounds-checked reads from a bitstream: running past its end is a truncation."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"bitstream truncated: {len(self.data)} bytes, header needs more")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def read_header(data: bytes) -> tuple[Header, int]:
    """Parse and check a bitstream's header; returns it and the offset of the first string."""
    if not data:
        raise BitstreamError("empty bitstream")
    r = _Reader(data)
    if r.take(4) != MAGIC:
        raise BitstreamError("not an icm bitstream (bad magic bytes)")
    version, name_length = r.unpack("<BB")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"bitstream format version {version} is not supported (this is {FORMAT_VERSION})")
    try:
        name = r.take(name_length).decode()
    except UnicodeDecodeError:
        raise BitstreamError("corrupted bitstream: model name is not text") from None
    fingerprint = r.take(8).hex()
    height, width, count = r.unpack("<HHB")
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"bitstream claims an image of {height}x{width} pixels: refused")
    lengths = list(r.unpack(f"<{count}I"))
    return Header(name, fingerprint, height, width, lengths), r.pos


def _check_file(data: bytes, header: Header, offset: int) -> None:
    expected = offset + sum(header.string_lengths) + 4
    if len(data) != expected:
        raise BitstreamError(f"bitstream {'truncated' if len(data) < expected else 'has trailing bytes'}: "
                             f"{len(data)} bytes, header says {expected}")
    (crc,) = struct.unpack("<I", data[-4:])
    if crc != zlib.crc32(data[:-4]):
        raise BitstreamError("bitstream corrupted (CRC-32 mismatch)")


def decode(model: nn.Module, data: bytes, fingerprint: str | None = None) -> torch.Tensor:
    """Decode a bitstream made by :func:`encode` with the same weights.

    Returns:
        [3, H, W] float tensor in [0, 1], of the original size.
    Raises:
        BitstreamError: corrupted or truncated data, absurd dimensions, or other weights.
    """
    data = bytes(data)
    header, offset = read_header(data)
    _check_file(data, header, offset)
    was_training = model.training
    model.eval().update(force=False)  # CDF tables first: they are part of the fingerprint
    expected = fingerprint or model_fingerprint(model)
    if header.fingerprint != expected:
        raise BitstreamError(f"bitstream was made by other weights or coding tables "
                             f"({header.model_name} {header.fingerprint}); "
                             f"this checkpoint is {expected}")
    strings, pos = [], offset
    for length in header.string_lengths:
        strings.append([data[pos : pos + length]])
        pos += length
    try:
        with torch.no_grad(), _one_thread():
            x_hat = model.decompress(strings, _z_shape(header.height, header.width))["x_hat"]
    except (RuntimeError, ValueError, IndexError) as err:
        raise BitstreamError(f"bitstream does not fit model {header.model_name}: {str(err).splitlines()[0][:120]}") from None
    finally:
        model.train(was_training)
    return x_hat[0, :, : header.height, : header.width].clamp(0, 1)


# --------------------------------------------------------------------------- command line


def read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """HxWx3 uint8 RGB of an image file, and a note when it had to be converted."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {str(err).splitlines()[0][:120]}") from None
    note = None
    if mode != "RGB":
        alpha = "A" in mode or "transparency" in rgb.info
        note = f"{path.name} is a {mode} image: coded as RGB" + (", alpha dropped" if alpha else "")
    return np.asarray(rgb), note


def _encode_cli(args) -> int:
    from icm_lib.checkpoint import load_checkpoint

    image, note = read_image(Path(args.input))
    model, meta, _ = load_checkpoint(args.checkpoint)
    if note:
        print(f"icm: note: {note}", file=sys.stderr)
    data = encode(model, image, model_name=meta["model"])
    write_atomic(Path(args.output), data)
    h, w = image.shape[:2]
    print(f"{args.output}: {w}x{h}, {len(data)} bytes, {bits_per_pixel(data, h, w):.4f} bpp ({meta['model']})")
    return 0


def _decode_cli(args) -> int:
    import io

    from PIL import Image

    from icm_lib.checkpoint import load_checkpoint

    path = Path(args.input)
    if not path.is_file():
        raise UserError(f"bitstream not found: {path}")
    data = path.read_bytes()
    read_header(data)  # a bad file is refused before the checkpoint is even loaded
    model, _, _ = load_checkpoint(args.checkpoint)
    image = to_uint8(decode(model, data))
    fmt = Image.registered_extensions().get(Path(args.output).suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for {args.output} (use .png)")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    write_atomic(Path(args.output), buffer.getvalue())
    print(f"{args.output}: {image.shape[1]}x{image.shape[0]}")
    return 0


def add_cli(sub) -> None:
    enc = sub.add_parser("encode", help="code an image into a bitstream file with a trained codec")
    enc.add_argument("input", help="image file (any size; grayscale and RGBA are coded as RGB)")
    enc.add_argument("output", help="bitstream file to write (.icm)")
    enc.add_argument("--checkpoint", required=True, help="codec checkpoint (icm train output)")
    enc.set_defaults(func=_encode_cli)
    dec = sub.add_parser("decode", help="decode a bitstream file into an image")
    dec.add_argument("input", help="bitstream file (.icm)")
    dec.add_argument("output", help="image file to write (.png)")
    dec.add_argument("--checkpoint", required=True, help="the checkpoint that encoded it")
    dec.set_defaults(func=_decode_cli)
