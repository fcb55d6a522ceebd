"""Bitstream files of the learned codecs: the rates this project reports are their sizes.

A file is a header followed by the entropy-coded strings of ``model.compress``
(CompressAI's rANS coder) and a CRC-32 of everything before it::

    magic "ICMB" | format version (u8) | model name (u8 length + utf-8)
    | checkpoint fingerprint (8 bytes) | original height, width (u16 each)
    | string count (u8) | string lengths (u32 each) | strings | CRC-32 (u32)

An ROI codec (:mod:`icm_lib.models.roi`) writes three strings, the third
the object mask on its latent grid; it takes the mask at encoding time and
its decoder reads it from the file.

Bits per pixel = 8 * file size / (H * W), header included. Images of any size
are replicate-padded to a multiple of 64 before coding and cropped back after
decoding. The decoder refuses a file made by other weights or other coding
tables (the fingerprint hashes the whole state_dict, scale table and CDF
tables included: a tcm-tiny with 64 scales and one with 256 never decode
each other's files), a corrupted or truncated file (CRC, lengths), and
dimensions over :mod:`icm_lib.limits` or whose coding would need more
memory than ``max-memory`` allows (:func:`working_memory`), before decoding
anything. A few bytes can claim 16384x4096 pixels, which tcm-tiny would need
some 50 GB to decode. Encoding checks the same limits, and refuses weights
or latents that are NaN or infinite before the rANS coder sees them (it
never returns on such symbols).

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
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from icm_lib import limits
from icm_lib.checkpoint import first_non_finite, model_fingerprint
from icm_lib.errors import UserError
from icm_lib.models.roi import takes_mask

MAGIC = b"ICMB"
FORMAT_VERSION = 1
PAD_MULTIPLE = 64
FORMAT_MAX_SIDE = 65535  # the header's u16; limits.MAX_SIDE is lower by default
PROBE_SIDE = 128  # working_memory's probe image: TCM's 8x8 windows fit whole at every scale
# Measured peak RSS growth of one encode or decode over the probe's largest op (its tensors in
# and out) times the padded pixels: tcm-tiny 1.2-2.0 (512-2048 pixels a side), bmshj2018-
# hyperprior 1.0-1.1 (1024), tcm-small 1.8-2.8 (512-1024), tcm-large 1.8-2.6 (384-768).
# The estimate multiplies by 3, so it errs on the side of refusing.
MEMORY_SAFETY = 3


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


def checked_fingerprint(model: nn.Module) -> str:
    """:func:`icm_lib.checkpoint.model_fingerprint` of weights that are all finite (checked once per weights).

    Raises:
        UserError: a weight is NaN or infinite (CompressAI's rANS coder never returns on such symbols).
    """
    fingerprint = model_fingerprint(model)
    if getattr(model, "_icm_finite", None) != fingerprint:
        broken = first_non_finite(model.state_dict())
        if broken:
            raise UserError(f"weight {broken} of the codec is NaN or infinite: refusing to code with it")
        model._icm_finite = fingerprint
    return fingerprint


class _LargestOp(TorchFunctionMode):
    """Records the largest tensor op run under it: the bytes of its tensor inputs and outputs together."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):  # skips .size(), .dim() and the like: most calls, and cheap
            size = out.nbytes + sum(_tensor_bytes(a) for a in args)
            if size > self.bytes:
                self.bytes = size
        return out


def _tensor_bytes(value) -> int:
    """Bytes of a tensor argument, or of the tensors in a list or tuple argument (torch.cat); weights excluded."""
    if isinstance(value, torch.Tensor):
        return 0 if isinstance(value, nn.Parameter) else value.nbytes
    if isinstance(value, (list, tuple)):
        return sum(v.nbytes for v in value if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter))
    return 0


_bytes_per_pixel: dict[str, float] = {}  # by model name and config: the probe's result


def working_memory(model: nn.Module, height: int, width: int) -> int:
    """Estimated bytes that encoding or decoding one HxW image allocates, the model aside.

    The model codes a PROBE_SIDE x PROBE_SIDE image once (cached per model name and config)
    while the largest op's tensors are measured; the estimate scales that per padded pixel and
    multiplies by MEMORY_SAFETY. Activations grow with the pixels, not with the coded bits,
    so this holds for any content.
    """
    key = f"{getattr(model, 'registry_name', type(model).__name__)}:{sorted(getattr(model, 'registry_config', {}).items())}"
    per_pixel = (
        _bytes_per_pixel.get(key) if hasattr(model, "registry_name") else getattr(model, "_icm_bytes_per_pixel", None)
    )
    if per_pixel is None:
        side = torch.linspace(0, 1, PROBE_SIDE)
        probe = torch.stack([side[:, None] * side, side[:, None].expand(-1, PROBE_SIDE), side.expand(PROBE_SIDE, -1)])[
            None
        ]
        with _coding(model), _LargestOp() as largest:
            out = _compress(model, probe, torch.ones(1, 1, PROBE_SIDE, PROBE_SIDE) if takes_mask(model) else None)
            model.decompress(out["strings"], out["shape"])
        per_pixel = largest.bytes / PROBE_SIDE**2
        _bytes_per_pixel[key] = model._icm_bytes_per_pixel = per_pixel
    padded = (height + (-height) % PAD_MULTIPLE) * (width + (-width) % PAD_MULTIPLE)
    return int(MEMORY_SAFETY * per_pixel * padded)


def check_size(model: nn.Module, height: int, width: int, doing: str) -> None:
    """Refuse (one-line :class:`UserError`) an image over the limits of :mod:`icm_lib.limits`.

    Images no larger than the probe are not estimated: the probe would cost as much as the work.
    """
    limits.check_image_size(height, width, f"{doing} an image")
    if height > FORMAT_MAX_SIDE or width > FORMAT_MAX_SIDE:
        raise UserError(f"{doing} an image of {width}x{height} pixels: the format's sides end at {FORMAT_MAX_SIDE}")
    if height * width > PROBE_SIDE**2:
        name = getattr(model, "registry_name", type(model).__name__)
        limits.MAX_MEMORY.check(
            working_memory(model, height, width), f"{doing} a {width}x{height} image with {name}", "an estimated "
        )


@contextmanager
def _finite_outputs(model: nn.Module, error: type[UserError], cause: str):
    """Raise ``error`` on NaN or infinite outputs of the model's transforms (g_a, h_s, ..., ModuleList items).

    Encoding: the rANS coder never returns on the symbols such values make, so they must stop
    before it. Decoding: a hostile bitstream's huge symbols overflow the synthesis.
    """

    def check(name):
        def hook(_module, _inputs, output):
            if torch.is_tensor(output) and output.is_floating_point() and not bool(torch.isfinite(output).all()):
                raise error(f"the codec's {name} produced NaN or infinite values ({cause}): refused")

        return hook

    parts = [(n, m) for n, m in model.named_children() if not isinstance(m, nn.ModuleList)]
    parts += [
        (f"{n}.{i}", item)
        for n, m in model.named_children()
        if isinstance(m, nn.ModuleList)
        for i, item in enumerate(m)
    ]
    hooks = [module.register_forward_hook(check(name)) for name, module in parts]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def _coding(model: nn.Module):
    """Eval mode with CDF tables, no autograd, one intra-op thread; the training mode is restored after."""
    was_training = model.training
    model.eval().update(force=False)
    try:
        with torch.no_grad(), _one_thread():
            yield
    finally:
        model.train(was_training)


@contextmanager
def _one_thread():
    """Run torch with one intra-op thread, then restore the caller's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def is_bitstream(path) -> bool:
    """Whether the file at ``path`` starts like a bitstream of this module."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


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
    """An HxWx3 uint8 array (its own, contiguous) from a [3, H, W] or [1, 3, H, W] float tensor in [0, 1]."""
    t = image.detach().float().reshape(*image.shape[-3:]).clamp(0, 1)
    return np.ascontiguousarray(t.mul(255).round().byte().permute(1, 2, 0).cpu().numpy())


def _pack_header(header: Header) -> bytes:
    name = header.model_name.encode()
    if len(name) > 255 or len(header.string_lengths) > 255:
        raise ValueError("model name or string count too long for the header")
    parts = [
        MAGIC,
        struct.pack("<BB", FORMAT_VERSION, len(name)),
        name,
        bytes.fromhex(header.fingerprint),
        struct.pack("<HHB", header.height, header.width, len(header.string_lengths)),
        struct.pack(f"<{len(header.string_lengths)}I", *header.string_lengths),
    ]
    return b"".join(parts)


def encode(model: nn.Module, image, model_name: str | None = None, fingerprint: str | None = None, mask=None) -> bytes:
    """Code one image into a bitstream file's bytes.

    Args:
        model: a CompressAI-style model with CDF tables (``update()`` done, as after load_checkpoint).
        image: [3, H, W] float tensor in [0, 1] or HxWx3 uint8 array, any size.
        model_name, fingerprint: recorded in the header; default to the model's registry
            name and :func:`checked_fingerprint`.
        mask: the object mask an ROI codec (:func:`icm_lib.models.roi.takes_mask`) codes, HxW in {0, 1}
            (bool, integer or float array or tensor); refused for any other codec.
    Returns:
        The file's bytes; ``bits_per_pixel(data, H, W)`` is its rate.
    """
    x = to_tensor(image)
    height, width = x.shape[-2:]
    m = _object_mask(model, mask, height, width)
    with _coding(model):
        fingerprint = fingerprint or checked_fingerprint(model)
        check_size(model, height, width, "encoding")
        pad = (0, (-width) % PAD_MULTIPLE, 0, (-height) % PAD_MULTIPLE)
        x = F.pad(x, pad, mode="replicate")
        with _finite_outputs(model, UserError, "broken weights or an image they overflow on"):
            out = _compress(model, x, None if m is None else F.pad(m, pad))  # the padding holds no object
    if tuple(out["shape"]) != _z_shape(height, width):
        raise RuntimeError(f"{type(model).__name__}: unexpected hyper-latent shape {tuple(out['shape'])}")
    strings = [s[0] for s in out["strings"]]
    header = Header(
        model_name or getattr(model, "registry_name", type(model).__name__),
        fingerprint,
        height,
        width,
        [len(s) for s in strings],
    )
    body = _pack_header(header) + b"".join(strings)
    return body + struct.pack("<I", zlib.crc32(body))


def _compress(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> dict:
    return model.compress(x) if mask is None else model.compress(x, mask)


def _object_mask(model: nn.Module, mask, height: int, width: int) -> torch.Tensor | None:
    """The (1, 1, H, W) float mask an ROI codec needs, checked; None for a codec that takes none.

    Raises:
        UserError: a mask missing for an ROI codec, given to another codec, of another size, or not binary.
    """
    name = getattr(model, "registry_name", type(model).__name__)
    if not takes_mask(model):
        if mask is not None:
            raise UserError(f"{name} takes no object mask (only an ROI codec such as mbt2018-mean-roi codes one)")
        return None
    if mask is None:
        raise UserError(f"{name} is an ROI codec: it codes the object mask, give it (icm encode --mask MASK.png)")
    m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).detach().cpu()
    if m.dim() != 2 or tuple(m.shape) != (height, width):
        raise UserError(f"object mask of shape {tuple(m.shape)} does not fit the {width}x{height} image (HxW expected)")
    if not bool(((m == 0) | (m == 1)).all()):
        raise UserError("object mask is not binary: expected 0 (background) and 1 (object)")
    return m.float()[None, None]


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
    try:
        limits.check_image_size(height, width, "bitstream claims an image")
    except UserError as err:
        raise BitstreamError(str(err)) from None
    lengths = list(r.unpack(f"<{count}I"))
    return Header(name, fingerprint, height, width, lengths), r.pos


def _check_file(data: bytes, header: Header, offset: int) -> None:
    expected = offset + sum(header.string_lengths) + 4
    if len(data) != expected:
        raise BitstreamError(
            f"bitstream {'truncated' if len(data) < expected else 'has trailing bytes'}: "
            f"{len(data)} bytes, header says {expected}"
        )
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
    with _coding(model):  # CDF tables first: they are part of the fingerprint
        expected = fingerprint or checked_fingerprint(model)
        if header.fingerprint != expected:
            raise BitstreamError(
                f"bitstream was made by other weights or coding tables "
                f"({header.model_name} {header.fingerprint}); "
                f"this checkpoint is {expected}"
            )
        check_size(model, header.height, header.width, "decoding")
        strings, pos = [], offset
        for length in header.string_lengths:
            strings.append([data[pos : pos + length]])
            pos += length
        try:
            with _finite_outputs(model, BitstreamError, "a corrupted or hostile bitstream"):
                x_hat = model.decompress(strings, _z_shape(header.height, header.width))["x_hat"]
        except (RuntimeError, ValueError, IndexError) as err:
            raise BitstreamError(
                f"bitstream does not fit model {header.model_name}: {str(err).splitlines()[0][:120]}"
            ) from None
    return x_hat[0, :, : header.height, : header.width].clamp(0, 1)
