"""Optical flow between neighbouring frames, behind one interface.

Every provider returns an H x W x 2 float32 field from frame t to frame s in the convention of
`trainer.warp` (I_t(p) ~ I_s(p + flow(p))). Flows do not depend on the model, so a training run
computes them once per dataset and caches them.

- `dis` (default): OpenCV's DIS, fast and good on textured belts.
- `farneback`: OpenCV's Farneback, dense and smooth.
- `raft`: torchvision's RAFT (small), only with weights available locally.
- `belt`: the calibrated belt motion, a pure translation by velocity x dt: exact for objects riding
  the belt and nearly free.
"""

from __future__ import annotations

import abc
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision

from trainer.errors import FlowError


class FlowProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    def __call__(self, frame_t: np.ndarray, frame_s: np.ndarray, dt_s: float | None = None) -> np.ndarray:
        """Flow from frame_t to frame_s (RGB uint8, same size); dt_s = time(s) - time(t)."""


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class DISFlow(FlowProvider):
    name = "dis"

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)

    def __call__(self, frame_t, frame_s, dt_s=None):
        return self._dis.calc(_gray(frame_t), _gray(frame_s), None).astype(np.float32)


class FarnebackFlow(FlowProvider):
    name = "farneback"

    def __call__(self, frame_t, frame_s, dt_s=None):
        flow = cv2.calcOpticalFlowFarneback(
            _gray(frame_t), _gray(frame_s), None,
            pyr_scale=0.5, levels=4, winsize=21, iterations=3, poly_n=7, poly_sigma=1.5, flags=0,
        )  # fmt: skip
        return flow.astype(np.float32)


class BeltMotionFlow(FlowProvider):
    """Objects ride the belt: everything on it moves by velocity x dt."""

    name = "belt"

    def __init__(self, velocity_px_s: tuple[float, float]) -> None:
        self.velocity = np.asarray(velocity_px_s, np.float32)

    def __call__(self, frame_t, frame_s, dt_s=None):
        if dt_s is None:
            raise FlowError("belt-motion flow needs frame times (time_s in the manifest)")
        flow = np.empty((*frame_t.shape[:2], 2), np.float32)
        flow[...] = self.velocity * dt_s
        return flow


class RAFTFlow(FlowProvider):
    """torchvision's RAFT-small; weights come from a local file or the torch hub cache only."""

    name = "raft"

    def __init__(self, weights: Path | None = None, device: str = "cpu") -> None:
        spec = torchvision.models.optical_flow.Raft_Small_Weights.C_T_V2
        path = weights or Path(torch.hub.get_dir()) / "checkpoints" / spec.url.rsplit("/", 1)[-1]
        if not Path(path).is_file():
            raise FlowError(
                f"RAFT weights not found at {path}: copy the torchvision checkpoint there or use 'dis'"
            )
        self.model = torchvision.models.optical_flow.raft_small(weights=None)
        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model.eval().to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, frame_t, frame_s, dt_s=None):
        height, width = frame_t.shape[:2]
        pad_h, pad_w = (-height) % 8, (-width) % 8

        def prepare(image: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)[None]
            return torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h), mode="replicate").to(self.device)

        flows = self.model(prepare(frame_t), prepare(frame_s), num_flow_updates=12)
        return flows[-1][0, :, :height, :width].permute(1, 2, 0).cpu().numpy().astype(np.float32)


def make_flow_provider(
    name: str, belt_velocity_px_s: tuple[float, float] | None = None, raft_weights: Path | None = None
) -> FlowProvider:
    if name == "dis":
        return DISFlow()
    if name == "farneback":
        return FarnebackFlow()
    if name == "raft":
        return RAFTFlow(raft_weights)
    if name == "belt":
        if belt_velocity_px_s is None:
            raise FlowError("belt-motion flow needs belt_velocity_px_s in the manifest (from calibration)")
        return BeltMotionFlow(belt_velocity_px_s)
    raise FlowError(f"unknown flow provider {name!r} (dis, farneback, raft, belt)")
