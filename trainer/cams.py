"""Reading saliency maps off a trained classifier, and turning them into masks.

- `cam`: the class maps themselves, ReLU'd and normalised by their maximum (what the paper trains);
  for the Grad-CAM baseline classifier (`GradCamClassifier`), its Grad-CAM maps on `layer4`.
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
from trainer.model import CamClassifier, Classifier, GradCamClassifier, normalise
from trainer.warp import warp

MapKind = Literal["cam", "f2f", "foreground"]
LABEL_BACKGROUND, LABEL_ILLEGAL, LABEL_LEGAL = 0, 1, 2


def input_batch(frames: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 RGB frames to the network's input (N x 3 x H x W, ImageNet-normalised):
    also what the live path feeds the exported model."""
    frames = np.require(frames, requirements=["C", "W"])  # rows read from disk may be read-only: copied then
    return normalise(torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0))


def _batches(model: Classifier, frames: np.ndarray, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(offset, normalised image batch on the model's device), with the model in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(frames), batch_size):
        yield start, input_batch(frames[start : start + batch_size]).to(device)


def _normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    maps = F.relu(maps)
    return maps / (maps.flatten(2).max(dim=2).values[..., None, None] + EPS)


def maps_at_input_size(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The network's CAMs (N x C x h x w, at its output stride) as normalised maps at input size
    (N x C x H x W in [0, 1]): how the trainer reads maps, and the live path too."""
    return _normalise_maps(F.interpolate(F.relu(cams), size=size, mode="bilinear", align_corners=False))


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


def grad_cam_maps(model: GradCamClassifier, frames: np.ndarray, batch_size: int = 16) -> torch.Tensor:
    """N x 2 x S x S Grad-CAM maps (before, after) of the baseline classifier, read on `layer4` with
    pytorch-grad-cam (each map scaled to [0, 1] by the package)."""
    from pytorch_grad_cam import GradCAM  # the baseline's own dependency: loaded when it is evaluated
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    out = []
    with GradCAM(model=model, target_layers=[model.target_layer]) as reader:
        for _, images in _batches(model, frames, batch_size):
            per_class = [
                reader(input_tensor=images, targets=[ClassifierOutputTarget(cls)] * len(images))
                for cls in (BEFORE, AFTER)
            ]
            out.append(torch.from_numpy(np.stack(per_class, axis=1)).float())
    return torch.cat(out)


def frame_to_frame(cams: dict[int, torch.Tensor], sequence: PreparedSequence, index: int) -> torch.Tensor:
    """F2F: max of frame `index`'s CAMs and its neighbours' CAMs warped onto it with the cached flows
    (`cams` holds 2 x S x S maps of the frame and of whichever neighbours exist); a neighbour across
    lost frames is left out."""
    fused = cams[index]
    size = fused.shape[-2:]
    scale = size[-1] / sequence.flow_prev.shape[-1]  # flows are stored at a fraction of the frame, both ways
    unbroken = sequence.unbroken_pairs()
    for neighbour, flows in ((index - 1, sequence.flow_prev), (index + 1, sequence.flow_next)):
        if neighbour in cams and unbroken[min(index, neighbour)]:
            flow = torch.from_numpy(flows[index : index + 1].astype(np.float32))
            flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False) * scale
            warped, valid = warp(cams[neighbour][None], flow)
            fused = torch.maximum(fused, (warped * valid)[0])
    return fused


def sequence_before_maps(
    model: Classifier,
    sequence: PreparedSequence,
    kind: MapKind,
    indices: list[int],
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
) -> torch.Tensor:
    """len(indices) x 2 x S x S maps (before, after) of the chosen frames, read the `kind` way.

    Only those frames (and, for F2F, their neighbours) go through the model, so evaluating a few
    frames of a long recording costs a few frames.
    """
    if kind == "foreground":
        return torch.cat(
            [torch.ones(len(indices), 1, *sequence.shape), torch.zeros(len(indices), 1, *sequence.shape)], 1
        )
    needed = sorted({n for i in indices for n in ((i - 1, i, i + 1) if kind == "f2f" else (i,))
                     if 0 <= n < len(sequence.frames)})  # fmt: skip
    foreground_only = np.where(sequence.foreground[needed][..., None], sequence.frames[needed], 0).astype(
        np.uint8
    )
    if isinstance(model, GradCamClassifier):
        maps = grad_cam_maps(model, foreground_only)
    else:
        maps = class_activation_maps(model, foreground_only, flip, scales)[:, [BEFORE, AFTER]]
    by_frame = dict(zip(needed, maps, strict=True))
    if kind == "f2f":
        return torch.stack([frame_to_frame(by_frame, sequence, i) for i in indices])
    return torch.stack([by_frame[i] for i in indices])


def masks_from_maps(maps: torch.Tensor, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """N x S x S label maps (0 background, 1 illegal, 2 legal) from (before, after) maps."""
    before, after = maps[:, 0].numpy(), maps[:, 1].numpy()
    illegal = (before >= threshold) & (before >= after) & foreground
    labels = np.where(foreground, LABEL_LEGAL, LABEL_BACKGROUND).astype(np.uint8)
    labels[illegal] = LABEL_ILLEGAL
    return labels
