"""The spatial module's tiling and merging (PuzzleCAM): tiles through the same network.

The paper cuts the image into 2x2 tiles; `grid` (rows, columns) also allows 1x2 and 2x1, tiles twice
as large, so that an object is cut half as often (a bottle cut in two can look like a crushed tray,
tracker issue 18). Tiles are stacked along the batch axis row by row (for 2x2: top-left, top-right,
bottom-left, bottom-right), so one forward pass handles all of them; `merge` is the exact inverse
of `tile`.
"""

from __future__ import annotations

import torch

Grid = tuple[int, int]  # rows, columns of tiles
PAPER_GRID: Grid = (2, 2)


def tile(images: torch.Tensor, grid: Grid = PAPER_GRID) -> torch.Tensor:
    """B x C x H x W to (rows * columns * B) x C x H/rows x W/columns (H, W divisible by them)."""
    rows, columns = grid
    height, width = images.shape[-2:]
    if height % rows or width % columns:
        raise ValueError(
            f"a {rows}x{columns} tiling needs height and width divisible by it, got {height}x{width}"
        )
    h, w = height // rows, width // columns
    return torch.cat(
        [images[..., r * h : (r + 1) * h, c * w : (c + 1) * w] for r in range(rows) for c in range(columns)],
        dim=0,
    )


def merge(tiles: torch.Tensor, grid: Grid = PAPER_GRID) -> torch.Tensor:
    """(rows * columns * B) x C x h x w back to B x C x (rows * h) x (columns * w)."""
    rows, columns = grid
    pieces = torch.chunk(tiles, rows * columns, dim=0)
    return torch.cat(
        [torch.cat(pieces[r * columns : (r + 1) * columns], dim=-1) for r in range(rows)], dim=-2
    )
