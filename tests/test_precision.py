"""Mixed-precision training (``icm_lib.training.precision``): bfloat16 transforms, float32 rate and loss."""

from __future__ import annotations

import pytest
import torch
from test_train import config, train_losses, train_root  # noqa: F401 - the fixture

from icm_lib.losses import ObjectRateDistortionLoss
from icm_lib.models import create
from icm_lib.training import loop, precision
from icm_lib.training.config import TrainConfig, recipe_differences


def small_codec() -> torch.nn.Module:
    torch.manual_seed(0)
    return create("mbt2018-mean", N=16, M=24).train()


def test_bfloat16_runs_the_transforms_in_bfloat16_and_the_rate_and_output_in_float32():
    model = precision.prepare(small_codec(), "bfloat16")
    seen = {}
    model.g_s.register_forward_hook(lambda m, i, out: seen.update(g_s=out.dtype))
    x = torch.rand(2, 3, 64, 64)
    out = precision.forward(model, (x,), "bfloat16")
    assert seen["g_s"] == torch.bfloat16
    assert out["x_hat"].dtype == torch.float32
    assert {t.dtype for t in out["likelihoods"].values()} == {torch.float32}
    losses = ObjectRateDistortionLoss(0.01)(out, x, torch.ones(2, 1, 64, 64))
    losses["loss"].backward()
    assert all(p.dtype == torch.float32 and p.grad is not None for p in model.g_a.parameters())


def test_the_entropy_models_compute_in_float32_under_autocast():
    from compressai.entropy_models import EntropyBottleneck

    model = precision.prepare(small_codec(), "bfloat16").eval()  # eval: rounding instead of noise
    bottleneck = model.entropy_bottleneck
    z = (torch.randn(2, 16, 4, 4) * 3).bfloat16()  # as the bfloat16 transform h_a hands it over
    plain = EntropyBottleneck.forward(bottleneck, z.float())[1]  # the unguarded forward, in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        guarded = bottleneck(z)[1]
        unguarded = EntropyBottleneck.forward(bottleneck, z)[1]
    assert guarded.dtype == torch.float32 and torch.equal(guarded, plain)
    assert not torch.equal(unguarded.float(), plain)  # what the guard prevents: likelihoods in bfloat16


def test_a_copy_of_a_prepared_codec_runs_its_own_entropy_models():
    """Validation codes a deep copy in eval mode while the trained model stays in train mode: the copy's
    likelihoods must be its own (rounding), not the original's (noise)."""
    import copy
    import pickle

    model = precision.prepare(small_codec(), "bfloat16")
    x = torch.rand(1, 3, 64, 64)
    for twin in (copy.deepcopy(model).eval(), pickle.loads(pickle.dumps(model)).eval()):
        assert isinstance(twin.entropy_bottleneck, precision.Float32Forward)
        first, second = (twin(x)["likelihoods"]["z"] for _ in range(2))
        assert torch.equal(first, second)  # deterministic: the copy's eval-mode entropy model ran
    assert not torch.equal(*(model(x)["likelihoods"]["z"] for _ in range(2)))  # the original: noise


def test_a_prepared_codec_pickled_here_loads_in_a_fresh_process(tmp_path):
    import pickle
    import subprocess
    import sys

    (tmp_path / "codec.pkl").write_bytes(pickle.dumps(precision.prepare(small_codec(), "bfloat16")))
    code = (
        "import pickle, sys; m = pickle.load(open(sys.argv[1], 'rb')); "
        "print(type(m.entropy_bottleneck).__name__, type(m.gaussian_conditional).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "codec.pkl")], capture_output=True, text=True)
    assert done.stdout.split() == ["Float32EntropyBottleneck", "Float32GaussianConditional"], done.stderr


def test_float32_training_is_left_as_it_was():
    model = small_codec()
    kind = type(model.entropy_bottleneck)
    assert precision.prepare(model, "float32") is model and type(model.entropy_bottleneck) is kind
    x = torch.rand(1, 3, 64, 64)
    assert precision.forward(model, (x,), "float32")["x_hat"].dtype == torch.float32


def test_an_unknown_setting_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown compute_dtype 'float16'.*'bfloat16'"):
        TrainConfig(tmp_path, compute_dtype="float16")


def test_a_float32_run_resumes_in_bfloat16_as_the_same_codec(tmp_path):
    fp32 = TrainConfig(tmp_path, model="mbt2018-mean", lmbda=0.01).to_meta()
    assert (
        recipe_differences(TrainConfig(tmp_path, model="mbt2018-mean", lmbda=0.01, compute_dtype="bfloat16"), fp32)
        == []
    )


def test_a_cpu_without_bfloat16_units_is_told_apart(monkeypatch):
    """oneDNN's own test decides on the CPU; float32 is native everywhere."""
    assert precision.native("float32", "cpu")
    for supported in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda s=supported: s)
        assert precision.native("bfloat16", "cpu") is supported


@pytest.mark.usefixtures("train_root")
def test_a_run_trains_in_bfloat16_and_its_loss_falls(tmp_path, capsys):
    out = tmp_path / "run"
    summary = loop.train_codec(config(out, steps=30, checkpoint_every=10, decay_at=(), compute_dtype="bfloat16"))
    losses = train_losses(out)
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    assert summary["val"]["bpp"] > 0 and summary["config"]["compute_dtype"] == "bfloat16"
    # where the CPU emulates bfloat16 (7x slower than float32 on an AVX2-only EPYC), the run says so
    assert ("has no bfloat16 units" in capsys.readouterr().out) == (not precision.native("bfloat16", "cpu"))
