"""The ROI codec's side information: the object mask on the latent grid, coded losslessly in a few bytes.

The ROI codec (:mod:`icm_lib.models.roi`) codes a latent only where its 16x16
pixel block touches an object, so its decoder must know which latents were
coded: the mask travels in the bitstream as one more string. Its coding, one
bit stream packed into bytes (most significant bit first, zero bits padding
the last byte)::

    mode bit 0: the h*w mask bits in raster order                          (raw)
    mode bit 1: the first cell's value (1 bit), then the lengths of the     (run-length)
                alternating runs in raster order, each Elias-gamma coded

The encoder writes whichever is shorter, so a mask never costs more than
``ceil((1 + h*w) / 8)`` bytes. An all-background mask is one run: a 256x256
image (16x16 latents) costs 19 bits, 3 bytes; the demo's ``shapes`` val images
with objects 16.5 bytes on average, at most 28 (0.003 bpp).

Decoding is hostile-input safe: the grid size comes from the header (already
checked against :mod:`icm_lib.limits`), and a string that does not describe
exactly h*w cells, or that has bytes or nonzero bits left over, is refused with
a ``ValueError`` (the bitstream reports it as a corrupted file).
"""

from __future__ import annotations

import numpy as np


def encode_latent_mask(mask: np.ndarray) -> bytes:
    """The bytes of a binary (h, w) latent-grid mask: raw or run-length, whichever is shorter."""
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    if flat.size == 0:
        raise ValueError("an empty latent mask cannot be coded")
    raw = _pack(np.concatenate([[False], flat]))
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    bits = [True, bool(flat[0])]
    for run in runs.tolist():
        bits.extend(_gamma(run))
    rle = _pack(np.array(bits, dtype=bool))
    return rle if len(rle) < len(raw) else raw


def decode_latent_mask(data: bytes, height: int, width: int) -> np.ndarray:
    """The (height, width) bool mask of :func:`encode_latent_mask`'s bytes.

    Raises:
        ValueError: the bytes do not describe exactly ``height * width`` cells (corrupted or hostile data).
    """
    cells = height * width
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    if bits.size == 0:
        raise ValueError("the latent mask string is empty")
    if bits[0] == 0:  # raw
        used = 1 + cells
        flat = bits[1:used].astype(bool)
        if flat.size != cells:
            raise ValueError(f"the latent mask holds {flat.size} of {cells} cells")
    else:
        flat, used = _runs(bits, cells)
    if len(data) != -(-used // 8) or bits[used:].any():
        raise ValueError("the latent mask string has bytes or bits left over")
    return flat.reshape(height, width)


def _runs(bits: np.ndarray, cells: int) -> tuple[np.ndarray, int]:
    """The cells of a run-length string (``bits[0]`` is the mode bit) and the number of bits it used."""
    if bits.size < 2:
        raise ValueError("the latent mask string is truncated")
    text = bits.tobytes()  # one byte per bit: bytes.find runs in C
    value, pos, filled = bool(bits[1]), 2, 0
    flat = np.zeros(cells, dtype=bool)
    while filled < cells:
        one = text.find(b"\x01", pos)
        zeros = one - pos
        if one < 0 or zeros > cells.bit_length() or one + zeros >= len(text):
            raise ValueError("the latent mask string is truncated or holds a run longer than the mask")
        run = int("".join("1" if b else "0" for b in text[one : one + zeros + 1]), 2)
        if filled + run > cells:
            raise ValueError(f"the latent mask's runs exceed its {cells} cells")
        flat[filled : filled + run] = value
        filled, value, pos = filled + run, not value, one + zeros + 1
    return flat, pos


def _gamma(n: int) -> list[bool]:
    """Elias gamma code of ``n >= 1``: ``len-1`` zeros, then ``n`` in binary."""
    binary = bin(n)[2:]
    return [False] * (len(binary) - 1) + [c == "1" for c in binary]


def _pack(bits: np.ndarray) -> bytes:
    return np.packbits(bits.astype(np.uint8)).tobytes()
