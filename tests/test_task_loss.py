"""The task loss of Eq. (2) with a real YOLO network: named from loss settings, frozen, and trains the codec."""

from __future__ import annotations

import sys

import pytest
import torch

from icm_lib.errors import UserError
from icm_lib.losses import TaskRateDistortionLoss, create_criterion
from icm_lib.models import create
from icm_lib.task_network import YoloBackboneFeatures, load_task_network
from tests.conftest import write_yolo_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def yolo_file(tmp_path_factory):
    return write_yolo_weights(tmp_path_factory.mktemp("yolo") / "weights" / "last.pt")


def test_the_backbone_gives_the_three_maps_the_neck_reads(yolo_file):
    net = load_task_network(str(yolo_file))
    assert isinstance(net, YoloBackboneFeatures) and net.feature_layers == (4, 6, 9)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    feats = net(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 12), (4, 6), (2, 3)]  # strides 8, 16, 32


def test_the_gradient_reaches_the_codec_and_the_detector_stays_frozen(yolo_file):
    torch.manual_seed(0)
    codec = create("mbt2018-mean", N=8, M=16).train()
    criterion = create_criterion(
        "task", 0.01, {"profile": "smoke", "dataset": "shapes"}, network=str(yolo_file)
    ).train()
    detector = {k: v.clone() for k, v in criterion.task_network.state_dict().items()}
    optimizer = torch.optim.Adam(codec.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 64, 64)
    out = criterion(codec(x), x, torch.ones(2, 1, 64, 64))
    assert out["task_loss"].item() > 0 and out["mse_loss"].requires_grad
    expected = 0.01 * (255**2 * out["mse_loss"] + 1000.0 * out["task_loss"]) + out["bpp_loss"]
    assert out["loss"].item() == pytest.approx(expected.item())
    before = codec.g_a[0].weight.detach().clone()
    out["loss"].backward()
    assert codec.g_a[0].weight.grad.abs().sum() > 0 and codec.g_s[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in criterion.task_network.parameters())
    optimizer.step()
    assert not torch.equal(codec.g_a[0].weight, before)
    assert not criterion.task_network.training  # criterion.train() leaves BatchNorm statistics alone
    after = criterion.task_network.state_dict()
    assert all(torch.equal(detector[k], after[k]) for k in detector)  # running means included


def test_the_task_term_pulls_towards_the_detector_features(yolo_file):
    """D_task is the features' MSE: the same image gives 0, another image more."""
    criterion = TaskRateDistortionLoss(0.01, network=str(yolo_file))
    x = torch.rand(1, 3, 64, 64)
    likelihoods = {"y": torch.full((1, 1, 1, 1), 0.5)}
    same = criterion({"x_hat": x.clone(), "likelihoods": likelihoods}, x)
    other = criterion({"x_hat": x.flip(-1), "likelihoods": likelihoods}, x)
    assert same["task_loss"].item() == 0 and other["task_loss"].item() > 0


def test_a_missing_detector_or_ultralytics_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ICM_ROOT", str(tmp_path))
    with pytest.raises(
        UserError,
        match=r"detectors/yolo/shapes/clean/weights/last.pt do not exist: train the clean "
        r"detector first .*network: PATH",
    ) as err:
        create_criterion("task", 0.01, {"profile": "smoke", "dataset": "shapes"})
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="nothing.pt do not exist: name a weights file"):
        create_criterion("task", 0.01, network="nothing.pt")
    monkeypatch.setitem(sys.modules, "ultralytics.nn.tasks", None)
    with pytest.raises(UserError, match="install ultralytics"):
        create_criterion("task", 0.01, network="nothing.pt")
