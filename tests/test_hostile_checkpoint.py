"""Hostile checkpoints: configs that do not fit their weights, NaN weights, damaged or altered files, bad meta.

Each case checks the exit status (or the UserError), the one-line message and that no file was
created or changed. The cases that could exhaust memory or hang run in a watched subprocess.
"""

from __future__ import annotations

import os
import zipfile

import pytest
import torch

from hostile import assert_error_line, assert_refused, codec_files, icm, snapshot
from icm_lib.bitstream import encode
from icm_lib.checkpoint import load_checkpoint, model_fingerprint, save_checkpoint, verify_checkpoint, weights_digest
from icm_lib.cli import main
from icm_lib.errors import UserError
from icm_lib.models import create

META = {"loss": "mse", "lmbda": 0.01, "step": 0, "data": "test"}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return codec_files(tmp_path_factory.mktemp("checkpoint"))


def _crafted(good, tmp_path, name, change, rehash=True):
    """A copy of the good checkpoint changed by ``change(payload)``; a hostile author recomputes the hash."""
    payload = torch.load(good / "ckpt.pt", weights_only=True)
    change(payload)
    if rehash and isinstance(payload.get("state_dict"), dict):
        payload["weights_sha256"] = weights_digest(payload["state_dict"])
    torch.save(payload, tmp_path / name)
    return tmp_path / name


def _encode(folder, checkpoint, capsys):
    status = main(["encode", str(folder / "a.png"), str(folder / "o.icm"), "--checkpoint", str(checkpoint)])
    return status, capsys.readouterr().err


def test_config_asking_for_a_huge_model_is_refused_before_building(good, tmp_path):
    """N=1024 in a 12 MB file: over 4 GB once built. Refused while the first layers are registered."""
    _crafted(good, tmp_path, "n1024.pt", lambda p: p["meta"]["model_config"].update(N=1024))
    (tmp_path / "a.png").write_bytes((good / "a.png").read_bytes())
    before = snapshot(tmp_path)
    outcome = icm("encode", "a.png", "o.icm", "--checkpoint", "n1024.pt", cwd=tmp_path)
    assert_refused(outcome, "its config asks for a larger tcm-tiny")
    assert "config and weights do not match" in outcome.stderr
    assert snapshot(tmp_path) == before


def test_absurd_config_values_are_refused(good, tmp_path):
    """N=10**9 (a 216 GB allocation traceback before), and a config that is not a dict."""
    path = _crafted(good, tmp_path, "n1e9.pt", lambda p: p["meta"]["model_config"].update(N=10**9))
    with pytest.raises(UserError, match="holds 1000000000, more than any stored weight tensor") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    path = _crafted(good, tmp_path, "cfg.pt", lambda p: p["meta"].update(model_config=[16]))
    with pytest.raises(UserError, match=r"model_config'\] is not a dict"):
        load_checkpoint(path)


def test_nan_weights_are_refused_instead_of_hanging(good, tmp_path):
    """NaN weights made `icm encode` spin forever inside the rANS coder."""

    def poison(payload):
        payload["state_dict"]["g_a.0.conv1.weight"].fill_(float("nan"))

    _crafted(good, tmp_path, "nan.pt", poison)
    (tmp_path / "a.png").write_bytes((good / "a.png").read_bytes())
    before = snapshot(tmp_path)
    outcome = icm("encode", "a.png", "o.icm", "--checkpoint", "nan.pt", cwd=tmp_path, timeout=60)
    assert_refused(outcome, "weight g_a.0.conv1.weight holds NaN or infinite values")
    assert snapshot(tmp_path) == before


def test_infinite_weights_are_refused(good, tmp_path):
    def poison(payload):
        payload["state_dict"]["h_a.0.conv1.weight"].view(-1)[0] = float("inf")

    with pytest.raises(UserError, match="weight h_a.0.conv1.weight holds NaN or infinite values"):
        load_checkpoint(_crafted(good, tmp_path, "inf.pt", poison))


@pytest.mark.timeout(120)
def test_non_finite_weights_or_latents_never_reach_the_coder():
    """Models built in Python, not loaded: NaN weights, then finite weights whose latents overflow."""
    torch.manual_seed(0)
    model = create("tcm-tiny").eval()
    image = torch.rand(3, 32, 32)
    with torch.no_grad():
        model.g_s[0].subpel_conv[0].weight.view(-1)[0] = float("nan")
    with pytest.raises(UserError, match="NaN or infinite: refusing to code with it"):
        encode(model, image)
    torch.manual_seed(0)
    model = create("tcm-tiny").eval()
    with torch.no_grad():
        model.g_a[-1].weight.fill_(3e38)
    with pytest.raises(UserError, match="the codec's g_a produced NaN or infinite values"):
        encode(model, image)


def test_one_flipped_byte_is_refused(good, tmp_path, capsys):
    raw = bytearray((good / "ckpt.pt").read_bytes())
    with zipfile.ZipFile(good / "ckpt.pt") as archive:
        entry = max(archive.infolist(), key=lambda e: e.file_size)
    raw[entry.header_offset + 30 + len(entry.filename) + len(entry.extra) + entry.file_size // 2] ^= 0x10
    (tmp_path / "flipped.pt").write_bytes(bytes(raw))
    (tmp_path / "a.png").write_bytes((good / "a.png").read_bytes())
    before = snapshot(tmp_path)
    assert_error_line(*_encode(tmp_path, tmp_path / "flipped.pt", capsys), "fails its CRC-32 check")
    assert snapshot(tmp_path) == before


def test_weights_altered_after_saving_are_refused(good, tmp_path):
    """Re-saved with new weights but the old hash (zip CRCs right): the stored hash catches it."""

    def alter(payload):
        payload["state_dict"]["g_s.0.conv.weight"].view(-1)[0] += 1e-3

    path = _crafted(good, tmp_path, "altered.pt", alter, rehash=False)
    with pytest.raises(UserError, match="do not match the hash stored with them"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="do not match the hash"):
        verify_checkpoint(path)


def test_checkpoints_without_a_hash_still_load(good, tmp_path):
    path = _crafted(good, tmp_path, "old.pt", lambda p: p.pop("weights_sha256"), rehash=False)
    verify_checkpoint(path)
    old, _, _ = load_checkpoint(path)
    new, _, _ = load_checkpoint(good / "ckpt.pt")
    assert model_fingerprint(old) == model_fingerprint(new)
    assert torch.load(good / "ckpt.pt", weights_only=True)["weights_sha256"] == weights_digest(new.state_dict())


@pytest.mark.parametrize(
    "case, message",
    [
        ("meta a list", "its meta is not a dict naming the model"),
        ("meta without model", "its meta is not a dict naming the model"),
        ("pickled module", "it pickles torch.nn.modules.linear.Linear, which is not plain weights"),
    ],
)
def test_bad_meta_and_pickles_give_one_line(good, tmp_path, capsys, case, message):
    if case == "meta a list":
        path = _crafted(good, tmp_path, "c.pt", lambda p: p.update(meta=[1, 2]))
    elif case == "meta without model":
        path = _crafted(good, tmp_path, "c.pt", lambda p: p["meta"].pop("model"))
    else:
        path = tmp_path / "c.pt"
        torch.save({"format": "icm-codec-checkpoint", "x": torch.nn.Linear(2, 2)}, path)
    (tmp_path / "a.png").write_bytes((good / "a.png").read_bytes())
    before = snapshot(tmp_path)
    assert_error_line(*_encode(tmp_path, path, capsys), message)
    assert snapshot(tmp_path) == before


def test_verify_checkpoint_refuses_a_truncated_file(good, tmp_path):
    """What a sweep needs before reusing a finished run (icm_lib.training.sweep.is_finished)."""
    assert verify_checkpoint(good / "ckpt.pt") is None
    (tmp_path / "checkpoint.pt").write_bytes((good / "ckpt.pt").read_bytes()[:100_000])
    with pytest.raises(UserError, match="corrupted or truncated") as err:
        verify_checkpoint(tmp_path / "checkpoint.pt")
    assert "\n" not in str(err.value)


def test_saved_checkpoints_get_the_umask_or_keep_their_mode(tmp_path):
    model = create("bmshj2018-hyperprior", N=8, M=16)
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "c.pt", model, META)
        assert path.stat().st_mode & 0o777 == 0o640
        path.chmod(0o604)
        save_checkpoint(path, model, META)
        assert path.stat().st_mode & 0o777 == 0o604  # a replaced file keeps its permissions
    finally:
        os.umask(old)
