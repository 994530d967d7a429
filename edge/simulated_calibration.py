"""The simulated belt as calibration sees it: camera pairs, clips, each camera's own belt plane and the
true belt travel. Shared by the calibration tests and `benchmarks/calibration.py`."""

from __future__ import annotations

import numpy as np

from calibration import BeltPlane
from edge.config import CameraConfig, SimulatorConfig
from edge.sources.simulated import SimulatedCamera


def simulated_pair(
    resolution: tuple[int, int] = (320, 240), fps: float = 10.0, **simulator: object
) -> tuple[SimulatedCamera, SimulatedCamera]:
    """C1 and C2 of one simulated installation, rendered on demand (no pacing)."""
    config = SimulatorConfig(realtime=False, **simulator)
    c1, c2 = (
        SimulatedCamera(
            CameraConfig(id=camera, kind="simulated", resolution=resolution, fps=fps), config, epoch_ns=0
        )
        for camera in ("c1", "c2")
    )
    return c1, c2


def local_plane(camera: SimulatedCamera) -> BeltPlane:
    """The camera's own belt coordinates (origin at its image's left edge), as a board there would give."""
    scale = camera.view.mm_per_px
    return BeltPlane(np.diag([scale, scale, 1.0]))


def render_clip(camera: SimulatedCamera, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first `frames` frames and their capture times in seconds on the camera's clock."""
    rendered = [camera.frame_at(seq) for seq in range(frames)]
    return [f.image for f in rendered], np.array([f.capture_ns / 1e9 for f in rendered])


def true_mean_speed(camera: SimulatedCamera, frames: int) -> float:
    """The belt's mean speed over the first `frames` frames, from the world itself."""
    end = camera.time_of(frames - 1)
    return (camera.world.belt_offset_mm(end) - camera.world.belt_offset_mm(0.0)) / end
