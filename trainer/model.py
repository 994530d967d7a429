"""The classifier: a torchvision ResNet trunk and a 1x1 convolution to 3 class maps.

The class maps `f` are the CAMs themselves (no fully connected layer after pooling), which is what
lets the spatial and temporal losses act on the maps directly. Classes, in order: before, after,
background.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn

from trainer.errors import RunError

log = logging.getLogger(__name__)

CLASSES = ("before", "after", "background")
Backbone = Literal["resnet18", "resnet34", "resnet50"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# every ImageNet checkpoint torchvision publishes for each trunk, newest first: a hub cache filled by
# an older torchvision (ResNet-50's V1 file) is as good as one filled by this one
_WEIGHTS = {
    "resnet18": (torchvision.models.ResNet18_Weights.IMAGENET1K_V1,),
    "resnet34": (torchvision.models.ResNet34_Weights.IMAGENET1K_V1,),
    "resnet50": (
        torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    ),
}
RANDOM_INIT = ("random", "none")  # the explicit ways to ask for no pretrained weights


def _dilate(stage: nn.Sequential, dilation: int) -> None:
    """One ResNet stage at its input's resolution: no stride, dilated 3x3 convolutions instead, so
    the class maps get finer without losing the stage's receptive field."""
    for block in stage:
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                if module.stride == (2, 2):
                    module.stride = (1, 1)
                if module.kernel_size == (3, 3):
                    module.dilation = (dilation, dilation)
                    module.padding = (dilation, dilation)


# output stride -> (stage, dilation) made stride-free: 16 the paper's; 8 gives a 128 px input the
# 16x12-cell maps a 256 px input has at 16 (the temporal term needs objects to span several cells)
_DILATED_STAGES = {32: (), 16: (("layer4", 2),), 8: (("layer3", 2), ("layer4", 4))}


def hub_checkpoints(backbone: str) -> list[Path]:
    """Where torchvision's own download would have put each ImageNet checkpoint of this trunk."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / weights.url.rsplit("/", 1)[-1] for weights in _WEIGHTS[backbone]]


def _weights_file(backbone: str, weights: str | Path) -> Path:
    if weights == "imagenet":
        found = [path for path in hub_checkpoints(backbone) if path.is_file()]
        if not found:
            looked = ", ".join(str(path) for path in hub_checkpoints(backbone))
            raise RunError(
                f"no ImageNet weights for {backbone} in the torch hub cache (looked for {looked}): put "
                "torchvision's checkpoint there, name a .pth in model.pretrained_weights, or set "
                "model.pretrained_weights: random to train from random initialisation"
            )
        return found[0]
    path = Path(weights)
    if not path.is_file():
        raise RunError(f"{path}: weights file not found (model.pretrained_weights)")
    return path


def load_pretrained(resnet: nn.Module, backbone: str, weights: str | Path | None) -> str:
    """ImageNet weights from a local file or the torch hub cache; never downloads.

    Weights that were asked for and are missing or of another trunk are an error: a model trained
    from random initialisation by mistake is much worse and nobody would notice. Returns where the
    weights came from ("random" when random initialisation was asked for), for the run's record.
    """
    if weights is None or weights in RANDOM_INIT:
        return "random"
    path = _weights_file(backbone, weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise RunError(f"{path}: cannot read as a PyTorch checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: not a {backbone} checkpoint (not a state dict)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = resnet.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # right names, wrong shapes: another trunk of the same family
        first = str(exc).strip().splitlines()[-1].strip()
        raise RunError(f"{path}: not a {backbone} checkpoint ({first})") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise RunError(
            f"{path}: not a {backbone} checkpoint (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    log.info("trunk initialised from %s", path)
    return str(path)


class CamClassifier(nn.Module):
    def __init__(
        self,
        backbone: Backbone = "resnet50",
        output_stride: Literal[8, 16, 32] = 16,
        weights: str | Path | None = "imagenet",
    ) -> None:
        super().__init__()
        resnet = getattr(torchvision.models, backbone)(weights=None)
        self.weights_source = load_pretrained(resnet, backbone, weights)
        for stage, dilation in _DILATED_STAGES[output_stride]:
            _dilate(getattr(resnet, stage), dilation)
        self.backbone_name = backbone
        self.output_stride = output_stride
        self.trunk = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )  # fmt: skip
        channels = resnet.fc.in_features
        self.head = nn.Conv2d(channels, len(CLASSES), kernel_size=1, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class maps f, B x 3 x H/stride x W/stride."""
        return self.head(self.trunk(images))

    @staticmethod
    def logits(maps: torch.Tensor) -> torch.Tensor:
        """Global average pooling: the image-level scores the classification loss sees."""
        return maps.mean(dim=(2, 3))


class GradCamClassifier(nn.Module):
    """The paper's Grad-CAM baseline: a plain classifier (torchvision ResNet, output stride 32, global
    average pooling, a fully connected head, softmax), whose maps are read afterwards with Grad-CAM
    on `layer4` (`trainer.cams.grad_cam_maps`). Unlike `CamClassifier`, its head has a bias and sits
    after the pooling, so Grad-CAM is not its CAM up to a scale."""

    output_stride = 32

    def __init__(self, backbone: Backbone = "resnet50", weights: str | Path | None = "imagenet") -> None:
        super().__init__()
        self.resnet = getattr(torchvision.models, backbone)(weights=None)
        self.weights_source = load_pretrained(self.resnet, backbone, weights)
        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, len(CLASSES))
        self.backbone_name = backbone

    @property
    def head(self) -> nn.Module:
        return self.resnet.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.resnet.layer4

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), B x 3."""
        return self.resnet(images)


Classifier = CamClassifier | GradCamClassifier


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8-range or [0, 1] RGB batches to ImageNet statistics (B x 3 x H x W, float in [0, 1])."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
