"""The four losses of the paper (eq. 12) and the schedule of their weights.

L = L_cls + L_pcls + a * L_spatial + b * L_temporal, with a and b zero during the first epoch, then
rising linearly to their maximum by the middle of training.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from trainer.warp import warp

EPS = 1e-5
Fusion = Literal["max", "mean"]


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft margin loss on GAP scores (eq. 4-6); labels are 0/1 vectors."""
    return F.multilabel_soft_margin_loss(logits, labels)


def spatial_loss(
    maps: torch.Tensor, puzzle_maps: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """L1 between the full image's class maps and the ones merged from its tiles (eq. 7), over every
    class's map (the paper's equation), or, given `present` (B x C, 0/1 labels), over the maps of
    the classes in the image only, as PuzzleCAM's and the paper authors' code compute it (their
    "masking"): the absent classes' maps are then not tied, and the mean stays over all maps, so with
    three classes and one label the term weighs a third as much."""
    difference = (maps - puzzle_maps).abs()
    if present is not None:
        difference = difference * present[:, :, None, None]
    return difference.mean()


def class_cams(maps: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """M = ReLU(f[y]) / max (eq. 8): the map of each image's own class, B x 1 x h x w."""
    index = classes.view(-1, 1, 1, 1).expand(-1, 1, *maps.shape[-2:])
    cam = F.relu(torch.gather(maps, 1, index))
    peak = cam.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    return cam / (peak + EPS)


def fuse_neighbours(
    cam_prev: torch.Tensor,
    cam_next: torch.Tensor,
    flow_prev: torch.Tensor,
    flow_next: torch.Tensor,
    how: Fusion = "max",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the t-1 and t+1 CAMs onto frame t and keep the pixel-wise maximum (eq. 9-10), or, as an
    ablation (`how="mean"`), their mean: the maximum passes on whichever neighbour's map spread
    furthest, which on a crowded belt may be onto a touching object of the other class.

    Flows go from frame t to t-1 and to t+1 (pixels at the flows' resolution); CAMs are brought to
    that resolution first. Returns the fused map and where at least one neighbour saw the point.
    """
    size = flow_prev.shape[-2:]
    up = {"size": size, "mode": "bilinear", "align_corners": False}
    warped_prev, valid_prev = warp(F.interpolate(cam_prev, **up), flow_prev)
    warped_next, valid_next = warp(F.interpolate(cam_next, **up), flow_next)
    # a neighbour that had not seen the point yet does not vote
    votes_prev, votes_next = warped_prev * valid_prev, warped_next * valid_next
    if how == "mean":
        fused = (votes_prev + votes_next) / (valid_prev + valid_next).clamp_min(1.0)
    else:
        fused = torch.maximum(votes_prev, votes_next)
    return fused, torch.maximum(valid_prev, valid_next)


def temporal_loss(
    cam_t: torch.Tensor,
    cam_prev: torch.Tensor,
    cam_next: torch.Tensor,
    flow_prev: torch.Tensor,
    flow_next: torch.Tensor,
    how: Fusion = "max",
    fixed_target: bool = False,
) -> torch.Tensor:
    """L1 between frame t's CAM and the fused, motion-compensated CAMs of t-1 and t+1 (eq. 11).

    The paper's loss trains all three frames' maps toward each other; with `fixed_target` (an
    ablation) the fused neighbours are a target only frame t's map moves toward. Measured worse on
    a crowded belt (benchmarks/README.md): the maximum of two warped maps pulls frame t's map
    outward, onto touching objects, and only the paper's pull on the neighbours holds that back."""
    fused, valid = fuse_neighbours(cam_prev, cam_next, flow_prev, flow_next, how)
    if fixed_target:
        fused = fused.detach()
    centre = F.interpolate(cam_t, size=fused.shape[-2:], mode="bilinear", align_corners=False)
    difference = (centre - fused).abs() * valid
    return difference.sum() / valid.sum().clamp_min(1.0)


def coherence_weight(step: int, steps_per_epoch: int, total_steps: int, maximum: float) -> float:
    """0 during the first epoch, then linear up to `maximum` at half of training, then flat."""
    if step < steps_per_epoch:
        return 0.0
    ramp_end = total_steps / 2
    if ramp_end <= steps_per_epoch:
        return maximum
    return maximum * min(1.0, (step - steps_per_epoch) / (ramp_end - steps_per_epoch))
