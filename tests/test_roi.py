"""The ROI codec (a compared method): its gate, its bitstream with the coded mask, its rate, its command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from icm_lib.bitstream import BitstreamError, decode, encode, read_header
from icm_lib.checkpoint import save_checkpoint
from icm_lib.cli import main
from icm_lib.errors import UserError
from icm_lib.models import create, takes_mask
from icm_lib.models.latent_mask import decode_latent_mask, encode_latent_mask

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"N": 16, "M": 24}


@pytest.fixture(scope="module")
def roi():
    torch.manual_seed(0)
    model = create("mbt2018-mean-roi", **SMALL).eval()
    model.update(force=True)
    return model


def _box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def test_the_gate_zeroes_the_background_latents_of_a_known_mask(roi):
    x = torch.rand(1, 3, 128, 128)
    mask = torch.from_numpy(_box_mask(128, 128, 20, 20, 30, 60))[None, None].float()  # latent row 1, cols 1-3
    seen = {}
    hook = roi.gaussian_conditional.register_forward_hook(lambda _m, inputs, _o: seen.update(y=inputs[0]))
    with torch.no_grad():
        out = roi(x, mask)
    hook.remove()
    kept = torch.zeros(8, 8, dtype=torch.bool)
    kept[1, 1:4] = True
    y = seen["y"][0]
    assert y.shape == (24, 8, 8)
    assert y[:, ~kept].abs().max() == 0 and y[:, kept].abs().min() > 0
    y_lik, z_lik = out["likelihoods"]["y"][0], out["likelihoods"]["z"][0]
    assert (y_lik[:, ~kept] == 1).all() and (y_lik[:, kept] < 1).any()
    assert (z_lik[:, 0, 0] < 1).any() and (z_lik[:, 1] == 1).all() and (z_lik[:, :, 1] == 1).all()
    with torch.no_grad():
        empty = roi(x, torch.zeros_like(mask))
    assert all((lk == 1).all() for lk in empty["likelihoods"].values())  # an estimated rate of 0 bits


def test_an_all_background_image_costs_the_header_and_the_mask(roi):
    image = torch.rand(3, 256, 256)
    data = encode(roi, image, mask=np.zeros((256, 256)))
    header, offset = read_header(data)
    mask_bytes = encode_latent_mask(np.zeros((16, 16), dtype=bool))
    assert header.string_lengths == [0, 0, len(mask_bytes)] and len(mask_bytes) == 3  # one run: 19 bits
    assert len(data) == offset + len(mask_bytes) + 4  # header, the mask's bytes, the CRC: nothing else
    with_object = encode(roi, image, mask=_box_mask(256, 256, 64, 64, 160, 128))
    y_bytes, z_bytes, _ = read_header(with_object)[0].string_lengths
    assert y_bytes > 0 and z_bytes > 0 and len(with_object) > len(data) + y_bytes + z_bytes - 1
    decoded = decode(roi, data)
    assert decoded.shape == image.shape and torch.isfinite(decoded).all()


@pytest.mark.parametrize("size", [(64, 64), (100, 150), (45, 70)])
def test_the_bitstream_round_trips_bit_exact_and_matches_the_forward_pass(roi, size):
    h, w = size
    image = torch.rand(3, h, w)
    mask = _box_mask(h, w, h // 4, w // 3, h // 2, w - 5)
    data = encode(roi, image, mask=mask)
    assert len(read_header(data)[0].string_lengths) == 3
    decoded = decode(roi, data)
    assert torch.equal(decoded, decode(roi, data)) and data == encode(roi, image, mask=mask)
    padded = torch.nn.functional.pad(image[None], (0, -w % 64, 0, -h % 64), mode="replicate")
    padded_mask = torch.nn.functional.pad(torch.from_numpy(mask)[None, None].float(), (0, -w % 64, 0, -h % 64))
    with torch.no_grad():
        expected = roi(padded, padded_mask)["x_hat"][0, :, :h, :w].clamp(0, 1)
    assert torch.allclose(decoded, expected, atol=1e-5)


def test_a_damaged_mask_string_is_a_corrupted_bitstream(roi):
    import struct
    import zlib

    data = encode(roi, torch.rand(3, 64, 64), mask=_box_mask(64, 64, 0, 0, 20, 20))
    header, offset = read_header(data)
    body = bytearray(data[:-4])
    body[offset + sum(header.string_lengths[:2])] ^= 0xFF  # the mask string's first byte
    damaged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(BitstreamError):
        decode(roi, damaged)


def test_the_mask_is_asked_for_checked_and_refused_by_other_codecs(roi):
    image = torch.rand(3, 64, 80)
    with pytest.raises(UserError, match=r"is an ROI codec: it codes the object mask, give it \(icm encode --mask"):
        encode(roi, image)
    with pytest.raises(UserError, match="does not fit the 80x64 image"):
        encode(roi, image, mask=np.zeros((64, 64)))
    with pytest.raises(UserError, match="not binary"):
        encode(roi, image, mask=np.full((64, 80), 0.5))
    other = create("mbt2018-mean", **SMALL).eval()
    assert takes_mask(roi) and not takes_mask(other)
    with pytest.raises(UserError, match="takes no object mask"):
        encode(other, image, mask=np.zeros((64, 80)))


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (16, 16), (7, 33)])
def test_latent_masks_round_trip_in_the_shorter_coding(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for mask in (rng.random(shape) < 0.5, np.zeros(shape, bool), np.ones(shape, bool), _box_mask(*shape, 0, 0, 2, 3)):
        data = encode_latent_mask(mask)
        assert np.array_equal(decode_latent_mask(data, *shape), mask)
        assert len(data) <= -(-(1 + mask.size) // 8)  # never more than the raw bits


def test_hostile_latent_mask_strings_are_refused():
    good = encode_latent_mask(_box_mask(16, 16, 2, 2, 5, 9))
    assert good[0] & 0x80  # run-length
    for bad in (b"", good[:-1], good + b"\x00", b"\xc0", b"\x80\x00\x00\x00\x00\x01", b"\x7f" * 40):
        with pytest.raises(ValueError):
            decode_latent_mask(bad, 16, 16)


def test_encode_command_takes_the_mask(tmp_path, capsys, roi):
    save_checkpoint(tmp_path / "roi.pt", roi, {"loss": "object", "lmbda": 0.015, "step": 0, "data": "none"})
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    Image.fromarray((_box_mask(70, 90, 10, 10, 40, 50) * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((70, 90), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.zeros((70, 91), np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.full((70, 90), 128, np.uint8)).save(tmp_path / "gray.png")
    base = ["encode", tmp_path / "x.png", tmp_path / "x.icm", "--checkpoint", tmp_path / "roi.pt"]
    assert main([str(a) for a in [*base, "--mask", tmp_path / "mask.png"]]) == 0
    full = (tmp_path / "x.icm").stat().st_size
    assert main([str(a) for a in [*base, "--mask", tmp_path / "empty.png"]]) == 0
    assert (tmp_path / "x.icm").stat().st_size < full
    assert (
        main(["decode", str(tmp_path / "x.icm"), str(tmp_path / "y.png"), "--checkpoint", str(tmp_path / "roi.pt")])
        == 0
    )
    assert Image.open(tmp_path / "y.png").size == (90, 70)
    capsys.readouterr()
    for extra, message in (
        ([], "is an ROI codec"),
        (["--mask", tmp_path / "none.png"], "mask not found"),
        (["--mask", tmp_path / "wide.png"], "is 91x70, the image 90x70"),
        (["--mask", tmp_path / "gray.png"], "is not binary"),
    ):
        assert main([str(a) for a in [*base, *extra]]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
