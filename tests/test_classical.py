"""Classical anchors: real file sizes, missing encoders skipped, the VVC YUV round trip."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

from icm_lib.evaluate.coding import codecs as codecs_mod
from icm_lib.evaluate.coding.codecs import PILLOW_FORMATS, PillowCodec, classical_codecs


def _image(h=45, w=62, seed=0, noise=12.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256
    return np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("family", sorted(PILLOW_FORMATS))
def test_pillow_codec_bytes_are_the_file(family, tmp_path):
    image = _image()
    low, high = PillowCodec(family, 10), PillowCodec(family, 80)
    data = low.encode(image)
    # the same settings written to a file by Pillow give exactly these bytes
    fmt = PILLOW_FORMATS[family]
    path = tmp_path / f"image.{family}"
    Image.fromarray(image).save(path, format=fmt.pillow_format, quality=10, **dict(fmt.options))
    assert path.stat().st_size == len(data)
    # the bitstream alone decodes the image (self-contained), at the input's size
    decoded = low.decode(path.read_bytes())
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 40
    assert len(high.encode(image)) > len(data)
    assert low.id == f"{family}@q10"


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        PillowCodec("jpeg", 50).encode(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="unknown classical codec"):
        classical_codecs(["gif"])


def test_missing_encoder_is_skipped_with_a_message(monkeypatch, capsys):
    broken = codecs_mod.PillowFormat("heic", "HEIF", "no_such_heif_plugin_module")
    monkeypatch.setitem(codecs_mod.PILLOW_FORMATS, "heic", broken)
    monkeypatch.setattr(codecs_mod.shutil, "which", lambda name: None)
    found, skipped = classical_codecs(["jpeg", "heic", "vvc"], {"jpeg": [20, 50]})
    assert [c.id for c in found] == ["jpeg@q20", "jpeg@q50"]
    assert len(skipped) == 2 and "no_such_heif_plugin_module" in skipped[0] and "vvencapp" in skipped[1]
    assert "skipped vvc" in capsys.readouterr().out


def test_vvc_yuv_conversion_round_trip():
    image = _image(37, 50, noise=0.0)
    yuv = codecs_mod._yuv420_from_rgb(image)
    assert len(yuv) == 56 * 40 * 3 // 2  # padded to multiples of 8, 4:2:0
    back = codecs_mod._rgb_from_yuv420(yuv, 56, 40)[:37, :50]
    assert np.abs(back.astype(int) - image).mean() < 3  # only 4:2:0 chroma and rounding lost
    # vvdecapp's 10-bit output (16-bit samples) reads back to the same picture
    deep = (np.frombuffer(yuv, np.uint8).astype("<u2") * 4).tobytes()
    assert np.array_equal(codecs_mod._rgb_from_yuv420(deep, 56, 40), codecs_mod._rgb_from_yuv420(yuv, 56, 40))


@pytest.mark.parametrize("rgb", [(243, 8, 36), (12, 200, 90), (128, 128, 128), (30, 60, 220)])
def test_vvc_yuv_is_bt601_full_range(rgb):
    """A flat picture's samples are BT.601 full range by its definition (Kr 0.299, Kb 0.114; JPEG's YCbCr).

    (243, 8, 36) is a colour where OpenCV's COLOR_RGB2YCrCb, with chroma factors rounded to
    0.564 and 0.713, gives Cb 103 and Cr 244 instead.
    """
    r, g, b = map(float, rgb)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    expected = [round(y), round((b - y) / (2 * (1 - 0.114)) + 128), round((r - y) / (2 * (1 - 0.299)) + 128)]
    frame = np.frombuffer(codecs_mod._yuv420_from_rgb(np.full((8, 8, 3), rgb, np.uint8)), np.uint8)
    assert frame[0] == expected[0] and frame[64] == expected[1] and frame[64 + 16] == expected[2]
    assert set(frame[:64]) == {expected[0]} and set(frame[64:80]) == {expected[1]} and set(frame[80:]) == {expected[2]}
    assert np.abs(codecs_mod._rgb_from_yuv420(frame.tobytes(), 8, 8).astype(int) - rgb).max() <= 1


FAKE_VVC = """#!{python}
# stands in for vvencapp / vvdecapp: the "bitstream" is the YUV frame itself
import shutil, sys
args = sys.argv[1:]
src = args[args.index("-i" if "-i" in args else "-b") + 1]
shutil.copy(src, args[args.index("-o") + 1])
"""


def test_vvc_codec_through_the_command_line_tools(tmp_path, monkeypatch):
    for name in ("vvencapp", "vvdecapp"):
        tool = tmp_path / name
        tool.write_text(FAKE_VVC.format(python=sys.executable))
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (codec,), skipped = classical_codecs(["vvc"], {"vvc": [37]})
    assert skipped == [] and codec.id == "vvc@qp37"
    image = _image(37, 50, noise=0.0)
    data = codec.encode(image)
    assert len(data) == 4 + 56 * 40 * 3 // 2  # size prefix + the tool's output file
    assert np.abs(codec.decode(data).astype(int) - image).mean() < 3


def test_pillow_decode_reads_only_the_bitstream():
    data = PillowCodec("webp", 50).encode(_image())
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "WEBP"
