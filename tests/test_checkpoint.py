"""Checkpoints: metadata, weights_only loading, training state, CDF tables, bad files."""

from __future__ import annotations

import pytest
import torch

from icm_lib.bitstream import checked_fingerprint
from icm_lib.checkpoint import load_checkpoint, model_fingerprint, save_checkpoint, weights_digest
from icm_lib.errors import UserError
from icm_lib.models import create

META = {"loss": "object", "lmbda": 0.05, "step": 12, "data": "shapes/train"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _training_state(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.rand(1, 3, 64, 64))["x_hat"].mean().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "step": 12,
    }


def test_round_trip_with_metadata_and_training_state(tmp_path):
    torch.manual_seed(0)
    model = create("tcm-tiny", drop_path_rate=0.1)
    state = _training_state(model)
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", model, META, training_state=state)
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)  # loadable by strangers without running code
    assert raw["meta"]["model"] == "tcm-tiny"
    loaded, meta, training_state = load_checkpoint(path)
    assert meta == {**META, "model": "tcm-tiny", "model_config": {**model.registry_config}}
    assert loaded.registry_config["drop_path_rate"] == 0.1 and not loaded.training
    assert model_fingerprint(loaded) == model_fingerprint(model)
    assert loaded.gaussian_conditional.quantized_cdf.numel() > 0
    assert torch.equal(training_state["rng"], state["rng"])
    optimizer = torch.optim.Adam(loaded.parameters(), lr=1e-4)
    optimizer.load_state_dict(training_state["optimizer"])


def test_missing_cdf_tables_are_computed_on_load(tmp_path):
    model = create("mbt2018-mean", N=16, M=24)
    path = save_checkpoint(tmp_path / "c.pt", model, META)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {
        k: (torch.zeros(0, dtype=v.dtype) if k.endswith(("_quantized_cdf", "_offset", "_cdf_length")) else v)
        for k, v in payload["state_dict"].items()
    }
    del payload["weights_sha256"]  # as written before checkpoints carried one
    torch.save(payload, path)
    loaded, _, training_state = load_checkpoint(path)
    assert training_state is None
    assert loaded.entropy_bottleneck._quantized_cdf.numel() > 0


def test_overwrite_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", create("tcm-tiny"), META)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        save_checkpoint(path, create("tcm-tiny"), META)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "foreign"])
def test_bad_checkpoint_files_are_refused(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.pt", create("tcm-tiny"), META)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "pickle":
        torch.save({"format": "icm-codec-checkpoint", "x": torch.nn.Linear(2, 2)}, path)  # a pickled module
    else:
        torch.save({"state_dict": {}}, path)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_checkpoints_store_the_complete_config(tmp_path):
    from dataclasses import fields

    from icm_lib.models.tcm import TCMConfig

    path = save_checkpoint(tmp_path / "c.pt", create("tcm-tiny"), {**META, "model_config": {"N": 99}})
    stored = torch.load(path, weights_only=True)["meta"]["model_config"]
    assert set(stored) == {f.name for f in fields(TCMConfig)}  # every field, whatever the caller passed
    assert stored["N"] == 16 and stored["scale_levels"] == 256


def test_checkpoints_outlive_changed_registry_defaults(tmp_path, monkeypatch):
    import icm_lib.models as models

    model = create("tcm-tiny")
    path = save_checkpoint(tmp_path / "c.pt", model, META)
    builder, defaults = models._REGISTRY["tcm-tiny"]
    monkeypatch.setitem(models._REGISTRY, "tcm-tiny", (builder, {**defaults, "N": 24, "scale_levels": 128}))
    loaded, _, _ = load_checkpoint(path)
    assert loaded.cfg.N == 16 and loaded.cfg.scale_levels == 256
    assert model_fingerprint(loaded) == model_fingerprint(model)


def test_old_checkpoints_keep_their_coding_tables(tmp_path):
    """A tcm-tiny saved before the table settings existed: registry defaults of the day, 64 scales."""
    model = create("tcm-tiny", scale_levels=64, cdf_rounding="compressai")
    path = save_checkpoint(tmp_path / "c.pt", model, META)
    payload = torch.load(path, weights_only=True)
    old_fields = (
        "N",
        "M",
        "hyper_channels",
        "config",
        "head_dim",
        "hyper_head_dim",
        "num_slices",
        "max_support_slices",
        "atten_dim",
        "atten_head_dim",
        "transform_dims",
    )
    payload["meta"]["model_config"] = {k: payload["meta"]["model_config"][k] for k in old_fields}
    torch.save(payload, path)
    loaded, _, _ = load_checkpoint(path)
    assert (loaded.cfg.scale_levels, loaded.cfg.cdf_rounding) == (64, "compressai")
    assert len(loaded.gaussian_conditional.scale_table) == 64
    assert model_fingerprint(loaded) == model_fingerprint(model)  # its old bitstreams still decode


def test_config_that_fits_no_model_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", create("tcm-tiny"), META)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["model_config"]["window"] = 3
    torch.save(payload, path)
    with pytest.raises(UserError, match="config does not fit model tcm-tiny"):
        load_checkpoint(path)


def test_fingerprint_is_cached_but_follows_the_weights():
    """One fingerprint for bitstreams and checkpoints: cached, yet new after any change of a weight."""
    torch.manual_seed(0)
    model = create("bmshj2018-hyperprior", N=8, M=16)
    model.update(force=True)
    first = model_fingerprint(model)
    assert first == weights_digest(model.state_dict())[:16] == checked_fingerprint(model)
    assert model_fingerprint(model, 64) == weights_digest(model.state_dict())
    with torch.no_grad():
        model.g_a[0].weight[0, 0, 0, 0] += 1.0  # in place: same storage, new version
    assert model_fingerprint(model) == weights_digest(model.state_dict())[:16] != first
    other = create("bmshj2018-hyperprior", N=8, M=16)
    other.update(force=True)
    model.load_state_dict(other.state_dict())
    assert model_fingerprint(model) == model_fingerprint(other)
    with torch.no_grad():
        model.g_s[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN or infinite"):
        checked_fingerprint(model)
