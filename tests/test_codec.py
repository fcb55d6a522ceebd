"""Bitstream files and the encode/decode command line: odd sizes, modes, determinism, bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from icm_lib.bitstream import MAGIC, BitstreamError, bits_per_pixel, decode, encode, read_header
from icm_lib.checkpoint import save_checkpoint
from icm_lib.cli import main
from icm_lib.models import create

META = {"loss": "object", "lmbda": 0.05, "step": 0, "data": "random weights (test)"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tcm-tiny checkpoint, another one, a 97x203 RGB image and its bitstream."""
    root = tmp_path_factory.mktemp("codec")
    torch.manual_seed(0)
    save_checkpoint(root / "a.pt", create("tcm-tiny"), META)
    save_checkpoint(root / "b.pt", create("tcm-tiny"), META)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (97, 203, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(root / "rgb.png")
    assert main(["encode", str(root / "rgb.png"), str(root / "rgb.icm"), "--checkpoint", str(root / "a.pt")]) == 0
    return root


def _run(args, capsys) -> tuple[int, str]:
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


def test_api_round_trip_matches_forward():
    torch.manual_seed(0)
    model = create("tcm-tiny").eval()
    image = torch.rand(3, 50, 77)
    data = encode(model, image)
    header, _ = read_header(data)
    assert (header.model_name, header.height, header.width) == ("tcm-tiny", 50, 77)
    with torch.no_grad():
        expected = model(image[None])["x_hat"][0].clamp(0, 1)
    assert torch.allclose(decode(model, data), expected, atol=1e-5)
    assert bits_per_pixel(data, 50, 77) == 8 * len(data) / (50 * 77)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_cli_round_trip_keeps_size(files, tmp_path, capsys, mode):
    source = Image.open(files / "rgb.png").convert(mode)
    source.save(tmp_path / "in.png")
    ckpt = files / "a.pt"
    status, err = _run(["encode", tmp_path / "in.png", tmp_path / "x.icm", "--checkpoint", ckpt], capsys)
    assert status == 0
    assert ("coded as RGB" in err) == (mode != "RGB")
    assert ("alpha dropped" in err) == (mode == "RGBA")
    assert _run(["decode", tmp_path / "x.icm", tmp_path / "out.png", "--checkpoint", ckpt], capsys)[0] == 0
    decoded = Image.open(tmp_path / "out.png")
    assert decoded.size == (203, 97) and decoded.mode == "RGB"


def test_two_processes_decode_identical_pixels(files, tmp_path):
    # different thread settings on purpose: coding pins its own
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "icm_lib.cli",
                "decode",
                str(files / "rgb.icm"),
                str(tmp_path / name),
                "--checkpoint",
                str(files / "a.pt"),
            ],
            env={**os.environ, "OMP_NUM_THREADS": threads},
        )
        for name, threads in (("p1.png", "1"), ("p2.png", "2"))
    ]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    first, second = (np.asarray(Image.open(tmp_path / n)) for n in ("p1.png", "p2.png"))
    assert first.shape == (97, 203, 3) and np.array_equal(first, second)


def _rewrite(data: bytes, offset: int, patch: bytes, fix_crc: bool) -> bytes:
    body = data[:offset] + patch + data[offset + len(patch) : -4]
    return body + (struct.pack("<I", zlib.crc32(body)) if fix_crc else data[-4:])


def _bad_bitstreams(data: bytes) -> dict[str, tuple[bytes, str]]:
    name_length = data[5]
    dims_at = 6 + name_length + 8
    return {
        "truncated": (data[: len(data) // 2], "truncated"),
        "header only": (data[:10], "truncated"),
        "corrupted": (data[:-20] + bytes([data[-20] ^ 0xFF]) + data[-19:], "corrupted"),
        "absurd dimensions": (_rewrite(data, dims_at, struct.pack("<HH", 65535, 65535), True), "65535x65535"),
        "not a bitstream": (b"\x89PNG\r\n" + data[6:], "not an icm bitstream"),
        "empty": (b"", "empty bitstream"),
    }


@pytest.mark.parametrize(
    "case", ["truncated", "header only", "corrupted", "absurd dimensions", "not a bitstream", "empty"]
)
def test_bad_bitstreams_are_refused(files, tmp_path, capsys, case):
    data, message = _bad_bitstreams((files / "rgb.icm").read_bytes())[case]
    (tmp_path / "bad.icm").write_bytes(data)
    status, err = _run(["decode", tmp_path / "bad.icm", tmp_path / "out.png", "--checkpoint", files / "a.pt"], capsys)
    assert status == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_decoding_with_other_weights_is_refused(files, tmp_path, capsys):
    status, err = _run(["decode", files / "rgb.icm", tmp_path / "out.png", "--checkpoint", files / "b.pt"], capsys)
    assert status == 2 and "other weights" in err and err.count("\n") == 1


def test_absurd_dimensions_refused_before_decoding():
    data = MAGIC + bytes([1, 1]) + b"x" + bytes(8) + struct.pack("<HHB", 9000, 9000, 0)
    with pytest.raises(BitstreamError, match="9000x9000"):
        decode(torch.nn.Identity(), data + struct.pack("<I", zlib.crc32(data)))


@pytest.mark.parametrize(
    "case", ["missing image", "not an image", "missing bitstream", "missing checkpoint", "bad checkpoint"]
)
def test_bad_command_line_inputs(files, tmp_path, capsys, case):
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 truncated zip")
    ckpt, image, out = files / "a.pt", files / "rgb.png", tmp_path / "o.icm"
    args, message = {
        "missing image": (["encode", tmp_path / "none.png", out, "--checkpoint", ckpt], "image not found"),
        "not an image": (["encode", tmp_path / "text.png", out, "--checkpoint", ckpt], "cannot read image"),
        "missing bitstream": (["decode", tmp_path / "none.icm", tmp_path / "o.png", "--checkpoint", ckpt], "not found"),
        "missing checkpoint": (["encode", image, out, "--checkpoint", tmp_path / "none.pt"], "checkpoint not found"),
        "bad checkpoint": (["encode", image, out, "--checkpoint", tmp_path / "bad.pt"], "corrupted or truncated"),
    }[case]
    status, err = _run(args, capsys)
    assert status == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
