"""The frozen recognition network of the task loss (Eq. 2): a YOLO detector's backbone features.

Shindo et al.'s Eq. (2), ``R + lambda_1 * MSE + lambda_2 * D_task``, is the
task-loss family their Object-MSE is set against: a codec trained through a
frozen recognition network. :class:`icm_lib.losses.TaskRateDistortionLoss`
takes ``D_task`` from here, the mean squared difference between the features
of the original and of the decoded image.

Which features, and why. The network is the YOLO detector the evaluation trains
on clean images (notebook 04: ``detectors/yolo/<dataset>/clean/weights/last.pt``
of the profile, the weights scored as "pre-trained"), or a weights file the user
names. ``D_task`` is taken on its *backbone outputs that the detection neck
reads*, found from the model's own layer graph: for YOLOv5 (ultralytics' v5u)
layers 4, 6 and 9, the C3 and SPPF outputs at strides 8, 16 and 32 (P3, P4,
P5), the three scales every detection is predicted from. Features, not the
detection loss: the loss needs the boxes of every training crop fed through
ultralytics' target assigner (our codec loader yields images and masks, and a
random crop cuts boxes), its assignment is discontinuous in the image, and on a
small detector it is noisy; the features are a smooth, label-free function of
the pixels, cover every object the detector can see and the context it uses,
and cost the backbone alone (no neck, head or NMS). The neck and head are left
out because they only recombine these three maps.

The detector is frozen: eval mode (BatchNorm statistics fixed) and no gradient
to its weights; the gradient flows through it into the codec.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from icm_lib.errors import UserError

DEFAULT_NETWORK = "yolo"  # the clean YOLO detector of the run's profile and dataset


class YoloBackboneFeatures(nn.Module):
    """The backbone of an ultralytics detection model, returning the outputs its detection neck reads."""

    def __init__(self, detection_model: nn.Module):
        super().__init__()
        depth = len(detection_model.yaml["backbone"])
        self.layers = nn.ModuleList(detection_model.model[:depth])
        read = {f for layer in detection_model.model[depth:] for f in _sources(layer) if 0 <= f < depth}
        self.feature_layers = tuple(sorted(read | {depth - 1}))  # YOLOv5: (4, 6, 9), strides 8, 16, 32

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Args: (B, 3, H, W) RGB in [0, 1], H and W multiples of 32. Returns: one map per feature layer."""
        outputs: list[torch.Tensor] = []
        x = images
        for i, layer in enumerate(self.layers):
            sources = _sources(layer)
            if sources != [-1]:
                x = [x if f == -1 else outputs[f] for f in sources]
                x = x[0] if len(x) == 1 else x
            x = layer(x)
            outputs.append(x)
            if i == self.feature_layers[-1]:
                break
        return [outputs[i] for i in self.feature_layers]


def _sources(layer: nn.Module) -> list[int]:
    f = getattr(layer, "f", -1)
    return list(f) if isinstance(f, (list, tuple)) else [f]


def weights_path(network: str, profile: str, dataset: str) -> Path:
    """The detector weights ``network`` names: ``"yolo"`` the profile's clean detector, else a path
    (relative ones from the project root)."""
    from icm_lib.paths import detectors_dir, project_root

    if network == DEFAULT_NETWORK:
        if not profile or not dataset:
            raise UserError(
                "the task loss's network 'yolo' is the clean detector of a profile and dataset: "
                "build the loss from a training run, or name a weights file"
            )
        return detectors_dir(profile) / "yolo" / dataset / "clean" / "weights" / "last.pt"
    path = Path(network)
    return path if path.is_absolute() else project_root() / path


def load_task_network(network: str, profile: str = "", dataset: str = "") -> nn.Module:
    """The frozen backbone features of the detector ``network`` names (:func:`weights_path`).

    Raises:
        UserError: ultralytics is not installed, the weights are missing, or the file holds no detector.
    """
    path = weights_path(network, profile, dataset)
    try:
        from ultralytics.nn.tasks import load_checkpoint
    except ImportError:
        raise UserError("the task loss runs a YOLO detector: install ultralytics (pip install ultralytics)") from None
    if network == DEFAULT_NETWORK and not path.is_file():  # the zoo's, on a machine that has only the checkout
        from icm_lib.evaluate.recognition.shipped import install_clean_yolo

        install_clean_yolo(profile, dataset)
    if not path.is_file():
        hint = (
            f"train the clean detector first (notebook 04 or icm evaluate --profile {profile}), or "
            if network == DEFAULT_NETWORK
            else ""
        )
        raise UserError(
            f"the task loss's detector weights {path} do not exist: {hint}"
            "name a weights file with loss_kwargs {task: {network: PATH}}"
        )
    try:
        model, _ = load_checkpoint(str(path))
    except Exception as err:  # noqa: BLE001 - any unreadable file: one line naming it
        raise UserError(f"the task loss's detector {path} cannot be loaded: {str(err).splitlines()[0][:120]}") from None
    if not hasattr(model, "yaml") or "backbone" not in model.yaml:
        raise UserError(f"{path} holds no ultralytics detection model with a backbone")
    return YoloBackboneFeatures(model.float()).eval().requires_grad_(False)
