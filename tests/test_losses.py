"""Losses against hand-computed values (Eq. 1, 3, 4 and the task form of Eq. 2)."""

from __future__ import annotations

import math

import pytest
import torch

from icm_lib.losses import ObjectRateDistortionLoss, RateDistortionLoss, TaskRateDistortionLoss, object_mse


def _output(x_hat: torch.Tensor) -> dict:
    # likelihoods 1/2 (1 bit) on 4 symbols and 1/4 (2 bits) on 2: 8 bits over 2*1*2 = 4 pixels -> 2 bpp
    return {"x_hat": x_hat, "likelihoods": {"y": torch.full((2, 1, 1, 2), 0.5), "z": torch.full((2, 1, 1, 1), 0.25)}}


@pytest.fixture
def pair():
    x = torch.zeros(2, 3, 1, 2)
    x_hat = x.clone()
    x_hat[0, :, 0, 0] = 0.1  # error 0.01 on 3 values, inside the mask
    x_hat[1, :, 0, 1] = 0.2  # error 0.04 on 3 values, outside the mask
    mask = torch.zeros(2, 1, 1, 2)
    mask[0, 0, 0, 0] = 1
    return x, x_hat, mask


def test_rate_distortion_loss(pair):
    x, x_hat, mask = pair
    out = RateDistortionLoss(lmbda=0.01)(_output(x_hat), x, mask)
    mse = (3 * 0.01 + 3 * 0.04) / 12
    assert out["bpp_loss"].item() == pytest.approx(2.0)
    assert out["mse_loss"].item() == pytest.approx(mse)
    assert out["object_mse_loss"].item() == pytest.approx(3 * 0.01 / 12)
    assert out["loss"].item() == pytest.approx(0.01 * 255**2 * mse + 2.0)


def test_object_rate_distortion_loss_image_average(pair):
    x, x_hat, mask = pair
    out = ObjectRateDistortionLoss(lmbda=0.05)(_output(x_hat), x, mask)
    assert out["object_mse_loss"].item() == pytest.approx(3 * 0.01 / 12)  # Eq. (3): over all 12 values
    assert out["mse_loss"].item() == pytest.approx(0.15 / 12)
    assert out["loss"].item() == pytest.approx(0.05 * 255**2 * 0.03 / 12 + 2.0)


def test_object_rate_distortion_loss_object_average(pair):
    x, x_hat, mask = pair
    out = ObjectRateDistortionLoss(lmbda=0.05, average="object")(_output(x_hat), x, mask)
    assert out["object_mse_loss"].item() == pytest.approx(0.01)  # over the 3 values of the one object pixel
    assert out["loss"].item() == pytest.approx(0.05 * 255**2 * 0.01 + 2.0)


@pytest.mark.parametrize("average", ["image", "object"])
def test_empty_mask_is_rate_only(pair, average):
    x, x_hat, _ = pair
    x_hat.requires_grad_(True)
    out = ObjectRateDistortionLoss(lmbda=0.05, average=average)(_output(x_hat), x, torch.zeros(2, 1, 1, 2))
    assert out["object_mse_loss"].item() == 0.0
    assert out["loss"].item() == pytest.approx(2.0)
    out["loss"].backward()
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() == 0


def test_object_mse_gradient_ignores_background(pair):
    x, x_hat, mask = pair
    x_hat.requires_grad_(True)
    object_mse(x_hat, x, mask).backward()
    assert x_hat.grad[1].abs().sum() == 0 and x_hat.grad[0, :, 0, 0].abs().min() > 0


def test_bad_average_is_refused():
    with pytest.raises(ValueError, match="average"):
        ObjectRateDistortionLoss(0.05, average="pixels")


def test_task_loss_uses_frozen_features(pair):
    x, x_hat, mask = pair
    task = torch.nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        task.weight.fill_(1.0)  # feature = sum of channels
    x_hat.requires_grad_(True)
    loss = TaskRateDistortionLoss(lmbda=0.01, task_weight=500.0, task_network=task)
    out = loss(_output(x_hat), x, mask)
    task_mse = (0.3**2 + 0.6**2) / 4  # feature errors 0.3 and 0.6 over 4 feature values
    mse = (3 * 0.01 + 3 * 0.04) / 12
    assert out["task_loss"].item() == pytest.approx(task_mse)
    assert out["mse_loss"].item() == pytest.approx(mse)
    # Eq. (2): bpp + lambda_1 MSE + lambda_2 D_task, lambda_1 = 0.01 * 255**2, lambda_2 = 0.01 * 500
    assert out["loss"].item() == pytest.approx(0.01 * 255**2 * mse + 0.01 * 500 * task_mse + 2.0)
    out["loss"].backward()
    assert task.weight.grad is None and x_hat.grad.abs().sum() > 0
    assert not loss.train().task_network.training
    assert math.isfinite(out["object_mse_loss"].item())
