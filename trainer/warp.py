"""Backward warping of maps with optical flow.

Convention (the same as OpenCV's and RAFT's): `flow` from frame t to frame s gives, for each pixel p
of frame t, the displacement to where that point is in frame s: I_t(p) ~ I_s(p + flow(p)).
Warping a map of frame s with that flow brings it onto frame t: warped(p) = M_s(p + flow(p)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """Normalised grid_sample coordinates (align_corners=True) for p + flow(p)."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    gx = 2 * x / max(width - 1, 1) - 1
    gy = 2 * y / max(height - 1, 1) - 1
    return torch.stack([gx, gy], dim=-1)


def warp(maps: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp B x C x H x W maps with a B x 2 x H x W flow (pixels).

    Returns the warped maps and a B x 1 x H x W validity mask: 0 where p + flow(p) falls outside the
    source frame (a point that had not entered the view yet), whose value is unknown, not zero.
    """
    grid = _sampling_grid(flow)
    warped = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    inside = (grid.abs() <= 1.0 + 1e-6).all(dim=-1, keepdim=True).permute(0, 3, 1, 2)
    return warped, inside.to(maps.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a flow field to another resolution, scaling the vectors with it."""
    height, width = flow.shape[-2:]
    resized = F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
    scale = torch.tensor(
        [(size[1] - 1) / max(width - 1, 1), (size[0] - 1) / max(height - 1, 1)],
        device=flow.device,
        dtype=flow.dtype,
    )
    return resized * scale.view(1, 2, 1, 1)
