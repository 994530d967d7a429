"""Reading saliency maps off a trained classifier, and turning them into masks.

- `cam`: the class maps themselves, ReLU'd and normalised by their maximum (what the paper trains).
- `gradcam`: Grad-CAM on the trunk's last feature maps (the classic baseline).
- `f2f`: Frame-to-Frame, the CAMs of neighbouring frames warped onto frame t with optical flow and
  fused by pixel-wise maximum after training.
- `foreground`: no classifier at all, every foreground pixel called illegal: the reference that
  shows how much a saliency method adds to background removal alone.

Masks: pixels of the foreground whose `before` map passes the threshold (and beats `after`) are
illegal, the rest of the foreground is legal, everything else background.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from trainer.dataset import AFTER, BEFORE, PreparedSequence
from trainer.losses import EPS
from trainer.model import CamClassifier, normalise
from trainer.warp import warp

MapKind = Literal["cam", "gradcam", "f2f", "foreground"]
LABEL_BACKGROUND, LABEL_ILLEGAL, LABEL_LEGAL = 0, 1, 2


def _batches(model: CamClassifier, frames: np.ndarray, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(offset, normalised image batch on the model's device), with the model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(frames), batch_size):
        batch = torch.from_numpy(frames[start : start + batch_size]).permute(0, 3, 1, 2).float().div(255.0)
        yield start, normalise(batch.to(device))


def _normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    maps = F.relu(maps)
    return maps / (maps.flatten(2).max(dim=2).values[..., None, None] + EPS)


@torch.no_grad()
def class_activation_maps(
    model: CamClassifier,
    frames: np.ndarray,
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
    batch_size: int = 16,
) -> torch.Tensor:
    """N x 3 x S x S normalised CAMs of foreground-only frames (N x S x S x 3 uint8).

    `flip` adds the mirrored image's maps, `scales` the maps of resized inputs (test-time
    augmentation, as in PuzzleCAM's inference): the maps are summed at frame size, then normalised.
    """
    out = []
    for _, images in _batches(model, frames, batch_size):
        size = images.shape[-2:]
        total = torch.zeros(len(images), 3, *size, device=images.device)
        for scale in scales:
            scaled = images if scale == 1.0 else F.interpolate(images, scale_factor=scale, mode="bilinear")
            variants = [(scaled, False), (scaled.flip(-1), True)] if flip else [(scaled, False)]
            for variant, mirrored in variants:
                maps = F.relu(model(variant))
                maps = maps.flip(-1) if mirrored else maps
                total += F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
        out.append(_normalise_maps(total).cpu())
    return torch.cat(out)


def grad_cam(
    model: CamClassifier, frames: np.ndarray, classes: list[int], batch_size: int = 16
) -> torch.Tensor:
    """N x 1 x S x S Grad-CAM of the given class per frame, on the trunk's output."""
    out = []
    for start, images in _batches(model, frames, batch_size):
        target = torch.tensor(classes[start : start + batch_size], device=images.device)
        features = model.trunk(images)
        features.retain_grad()
        scores = CamClassifier.logits(model.head(features))
        scores.gather(1, target[:, None]).sum().backward()
        weights = features.grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
        model.zero_grad(set_to_none=True)
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        out.append(_normalise_maps(cam).cpu())
    return torch.cat(out)


def frame_to_frame(cams: torch.Tensor, sequence: PreparedSequence) -> torch.Tensor:
    """F2F: max of each frame's CAMs and its neighbours' CAMs warped onto it with the cached flows."""
    size = cams.shape[-2:]
    flow_size = sequence.flow_prev.shape[-2:]
    scale = size[0] / flow_size[0]

    def full_flow(flows: np.ndarray) -> torch.Tensor:
        small = torch.from_numpy(flows.astype(np.float32))
        return F.interpolate(small, size=size, mode="bilinear", align_corners=False) * scale

    fused = cams.clone()
    if len(cams) > 1:
        warped_prev, valid_prev = warp(cams[:-1], full_flow(sequence.flow_prev[1:]))
        fused[1:] = torch.maximum(fused[1:], warped_prev * valid_prev)
        warped_next, valid_next = warp(cams[1:], full_flow(sequence.flow_next[:-1]))
        fused[:-1] = torch.maximum(fused[:-1], warped_next * valid_next)
    return fused


def sequence_before_maps(
    model: CamClassifier,
    sequence: PreparedSequence,
    kind: MapKind,
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
) -> torch.Tensor:
    """N x 2 x S x S maps (before, after) for every frame of a sequence, read the `kind` way."""
    if kind == "foreground":
        count, size = len(sequence.frames), sequence.frames.shape[1]
        return torch.cat([torch.ones(count, 1, size, size), torch.zeros(count, 1, size, size)], dim=1)
    foreground_only = np.where(sequence.foreground[..., None], sequence.frames, 0).astype(np.uint8)
    if kind == "gradcam":
        before = grad_cam(model, foreground_only, [BEFORE] * len(foreground_only))
        after = grad_cam(model, foreground_only, [AFTER] * len(foreground_only))
        return torch.cat([before, after], dim=1)
    cams = class_activation_maps(model, foreground_only, flip, scales)[:, [BEFORE, AFTER]]
    return frame_to_frame(cams, sequence) if kind == "f2f" else cams


def masks_from_maps(maps: torch.Tensor, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """N x S x S label maps (0 background, 1 illegal, 2 legal) from (before, after) maps."""
    before, after = maps[:, 0].numpy(), maps[:, 1].numpy()
    illegal = (before >= threshold) & (before >= after) & foreground
    labels = np.where(foreground, LABEL_LEGAL, LABEL_BACKGROUND).astype(np.uint8)
    labels[illegal] = LABEL_ILLEGAL
    return labels
