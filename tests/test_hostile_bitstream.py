"""Hostile bitstreams and images for `icm decode` / `icm encode`: limits before work, one-line errors.

Each case checks the exit status, the one-line message and that no file was created or changed.
Cases that could exhaust memory, hang or crash run in a watched subprocess (see hostile.py).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from hostile import assert_error_line, assert_refused, codec_files, icm, snapshot
from icm_lib.bitstream import FORMAT_VERSION, MAGIC, read_header
from icm_lib.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """hostile.codec_files, the bitstream of its image and the checkpoint's fingerprint."""
    root = codec_files(tmp_path_factory.mktemp("bitstream"))
    assert main(["encode", str(root / "a.png"), str(root / "a.icm"), "--checkpoint", str(root / "ckpt.pt")]) == 0
    return root, read_header((root / "a.icm").read_bytes())[0].fingerprint


def _claiming(fingerprint: str, height: int, width: int, payload: bytes = bytes(range(32))) -> bytes:
    """A well-formed bitstream (CRC and lengths right) that claims ``height`` x ``width`` pixels."""
    name = b"tcm-tiny"
    half = len(payload) // 2
    body = (
        MAGIC
        + struct.pack("<BB", FORMAT_VERSION, len(name))
        + name
        + bytes.fromhex(fingerprint)
        + struct.pack("<HHB", height, width, 2)
        + struct.pack("<2I", half, len(payload) - half)
        + payload
    )
    return body + struct.pack("<I", zlib.crc32(body))


def _decode(folder, source, output, *extra, capsys=None):
    status = main(
        ["decode", str(folder / source), str(folder / output), "--checkpoint", str(folder / "ckpt.pt"), *extra]
    )
    return status, capsys.readouterr().err if capsys else ""


def test_huge_claim_with_tiny_payload_is_refused_before_allocating(codec, tmp_path):
    """16384x4096 pixels in 71 bytes: tcm-tiny would need some 50 GB; refused at the start."""
    root, fingerprint = codec
    (tmp_path / "huge.icm").write_bytes(_claiming(fingerprint, 4096, 16384))
    (tmp_path / "ckpt.pt").symlink_to(root / "ckpt.pt")
    before = snapshot(tmp_path)
    outcome = icm(
        "decode", "huge.icm", "out.png", "--checkpoint", "ckpt.pt", cwd=tmp_path, env={"ICM_MAX_MEMORY": "1G"}
    )
    assert_refused(outcome, "over the max-memory limit of 1.0 GiB")
    assert "16384x4096" in outcome.stderr and "ICM_MAX_MEMORY" in outcome.stderr
    assert snapshot(tmp_path) == before


def test_memory_limit_from_environment_and_flag(codec, tmp_path, capsys, monkeypatch):
    """2048x2048 (3 GB for tcm-tiny) is refused under 1 GiB; a flag wins over the environment."""
    root, fingerprint = codec
    (tmp_path / "ckpt.pt").symlink_to(root / "ckpt.pt")
    (tmp_path / "big.icm").write_bytes(_claiming(fingerprint, 2048, 2048))
    before = snapshot(tmp_path)
    monkeypatch.setenv("ICM_MAX_MEMORY", "1G")
    assert_error_line(*_decode(tmp_path, "big.icm", "out.png", capsys=capsys), "an estimated")
    monkeypatch.setenv("ICM_MAX_MEMORY", "64G")
    assert_error_line(
        *_decode(tmp_path, "big.icm", "out.png", "--max-memory", "512M", capsys=capsys),
        "over the max-memory limit of 512.0 MiB",
    )
    monkeypatch.setenv("ICM_MAX_MEMORY", "lots")
    assert_error_line(*_decode(tmp_path, "big.icm", "out.png", capsys=capsys), "ICM_MAX_MEMORY='lots' is not a size")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("height, width, message", [(9000, 9000, "max-pixels"), (40, 20000, "max-side")])
def test_claimed_sizes_over_pixel_limits(codec, tmp_path, capsys, height, width, message):
    root, fingerprint = codec
    (tmp_path / "ckpt.pt").symlink_to(root / "ckpt.pt")
    (tmp_path / "x.icm").write_bytes(_claiming(fingerprint, height, width))
    before = snapshot(tmp_path)
    assert_error_line(*_decode(tmp_path, "x.icm", "out.png", capsys=capsys), message)
    assert snapshot(tmp_path) == before


def test_bitstream_file_over_the_memory_limit_is_not_read(codec, tmp_path, capsys, monkeypatch):
    root, _ = codec
    (tmp_path / "ckpt.pt").symlink_to(root / "ckpt.pt")
    (tmp_path / "a.icm").write_bytes((root / "a.icm").read_bytes())
    monkeypatch.setenv("ICM_MAX_MEMORY", "100")
    assert_error_line(*_decode(tmp_path, "a.icm", "out.png", capsys=capsys), "a file of")
    assert not (tmp_path / "out.png").exists()


def test_encode_refuses_images_over_the_limits(codec, tmp_path, capsys):
    """A 10 KB 1-bit 9000x9000 PNG, a 16384x16384 one (PIL's DecompressionBombError before)."""
    root, _ = codec
    Image.new("1", (9000, 9000)).save(tmp_path / "onebit.png")
    Image.new("1", (16384, 16384)).save(tmp_path / "bomb.png")
    before = snapshot(tmp_path)
    for name, message in (("onebit.png", "encoding onebit.png (9000x9000 pixels)"), ("bomb.png", "max-pixels")):
        status = main(["encode", str(tmp_path / name), str(tmp_path / "o.icm"), "--checkpoint", str(root / "ckpt.pt")])
        assert_error_line(status, capsys.readouterr().err, message)
    assert snapshot(tmp_path) == before


def test_big_one_bit_png_stays_within_memory(codec, tmp_path):
    """The same 9000x9000 PNG with the pixel limit raised: refused by the memory estimate, not by the machine."""
    root, _ = codec
    Image.new("1", (9000, 9000)).save(tmp_path / "onebit.png")
    before = snapshot(tmp_path)
    outcome = icm(
        "encode",
        "onebit.png",
        "o.icm",
        "--checkpoint",
        root / "ckpt.pt",
        cwd=tmp_path,
        env={"ICM_MAX_PIXELS": "100M", "ICM_MAX_MEMORY": "1G"},
    )
    assert_refused(outcome, "an estimated")
    assert snapshot(tmp_path) == before


def test_sixteen_bit_grayscale_is_scaled_not_clipped(codec, tmp_path, capsys):
    from icm_lib.codec_cli import read_image

    root, _ = codec
    ramp = np.linspace(0, 65535, 40 * 56).reshape(40, 56).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    rgb, note = read_image(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 56, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.round(ramp / 257).astype(np.uint8))
    assert "16-bit" in note and "scaled to 8 bits" in note
    status = main(["encode", str(tmp_path / "g16.png"), str(tmp_path / "g.icm"), "--checkpoint", str(root / "ckpt.pt")])
    assert status == 0 and "16-bit grayscale image (I;16): scaled to 8 bits" in capsys.readouterr().err


def test_sixteen_bit_colour_says_so(tmp_path):
    import cv2

    from icm_lib.codec_cli import read_image

    colour = np.zeros((8, 8, 3), np.uint16)
    colour[..., 0], colour[..., 1], colour[..., 2] = 65535, 32896, 300  # written as BGR
    cv2.imwrite(str(tmp_path / "c16.png"), colour)
    rgb, note = read_image(tmp_path / "c16.png")
    assert (
        tuple(rgb[0, 0]) == (1, 128, 255)
        and note == "c16.png is a 16-bit RGB image: reduced to 8 bits (the high byte of each sample)"
    )


def test_float_images_are_refused(codec, tmp_path, capsys):
    root, _ = codec
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "f.tif")
    status = main(["encode", str(tmp_path / "f.tif"), str(tmp_path / "o.icm"), "--checkpoint", str(root / "ckpt.pt")])
    assert_error_line(status, capsys.readouterr().err, "32-bit floating-point image")
    assert not (tmp_path / "o.icm").exists()
