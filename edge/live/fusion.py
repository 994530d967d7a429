"""Inference-time temporal fusion (the paper's future work): the current frame's maps fused, by
pixel-wise maximum, with the previous frames' maps moved onto it, either by the calibrated belt
motion or by optical flow between the frames. The trainer's own flow providers and warp do it, as
Frame-to-Frame does after training. Training fuses t-1 and t+1; live, only the past is known, so
the last `frames` frames are fused (1 by default: t-1; more reach further back, where a flow over a
longer gap is less sure and an object's map spreads wider).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np
import torch

from trainer.flow import BeltMotionFlow, DISFlow, FlowProvider
from trainer.warp import warp

FusionMode = Literal["none", "belt", "flow"]
MAX_GAP_S = 0.5  # frames further apart (a stall, a swap) are not fused: the belt moved on too far


class TemporalFusion:
    def __init__(
        self, mode: FusionMode, velocity_px_s: tuple[float, float] | None = None, frames: int = 1
    ) -> None:
        """`velocity_px_s`: the belt's motion in input pixels per second (needed for `belt`);
        `frames`: how many previous frames are fused."""
        if mode == "belt" and velocity_px_s is None:
            raise ValueError("belt-motion fusion needs the belt speed and plane from the calibration")
        self.mode = mode
        self._flow: FlowProvider | None = (
            BeltMotionFlow(velocity_px_s) if mode == "belt" else DISFlow() if mode == "flow" else None
        )
        self._previous: deque[tuple[torch.Tensor, np.ndarray, int]] = deque(maxlen=frames)

    def fuse(self, maps: torch.Tensor, frame: np.ndarray, capture_ns: int) -> torch.Tensor:
        """C x H x W maps of `frame` (input-size RGB), fused with the previous frames' (those at most
        MAX_GAP_S before it, of the same size)."""
        previous = list(self._previous)
        self._previous.append((maps, frame, capture_ns))
        if self._flow is None:
            return maps
        fused = maps
        for before_maps, before_frame, before_ns in previous:
            dt_s = (before_ns - capture_ns) / 1e9
            if not -MAX_GAP_S <= dt_s < 0 or before_maps.shape != maps.shape:
                continue
            flow = self._flow(frame, before_frame, dt_s)
            warped, valid = warp(before_maps[None], torch.from_numpy(flow.transpose(2, 0, 1)).float()[None])
            fused = torch.maximum(fused, (warped * valid)[0])
        return fused
