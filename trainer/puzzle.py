"""The spatial module's tiling and merging (PuzzleCAM): 2x2 tiles through the same network.

Tiles are stacked along the batch axis in the order top-left, top-right, bottom-left, bottom-right,
so one forward pass handles all four; `merge` is the exact inverse of `tile`.
"""

from __future__ import annotations

import torch


def tile(images: torch.Tensor) -> torch.Tensor:
    """B x C x H x W to 4B x C x H/2 x W/2 (H and W must be even)."""
    height, width = images.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"tiling needs even height and width, got {height}x{width}")
    h, w = height // 2, width // 2
    return torch.cat(
        [images[..., :h, :w], images[..., :h, w:], images[..., h:, :w], images[..., h:, w:]], dim=0
    )


def merge(tiles: torch.Tensor) -> torch.Tensor:
    """4B x C x h x w back to B x C x 2h x 2w."""
    top_left, top_right, bottom_left, bottom_right = torch.chunk(tiles, 4, dim=0)
    top = torch.cat([top_left, top_right], dim=-1)
    bottom = torch.cat([bottom_left, bottom_right], dim=-1)
    return torch.cat([top, bottom], dim=-2)
