"""The simulated belt as calibration sees it: the calibration its installation implies (the truth that
estimates are judged against), camera pairs, clips, each camera's own belt plane and the true belt
travel. Shared by the agent, the calibration tests and `benchmarks/calibration.py`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from calibration import BeltPlane
from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera
from edge.simulator.world import camera_view, implied_calibration

# where the agent writes the simulated installation's calibration, in the data directory
SIMULATOR_CALIBRATION_FILE = "simulator_calibration.yaml"


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


def write_simulator_calibration(path: Path, simulator: SimulatorConfig, cameras: list[CameraConfig]) -> Path:
    """Write the calibration the simulated installation implies, as ground truth for estimates."""
    views = [camera_view(c.id, c.resolution, simulator) for c in cameras]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(implied_calibration(simulator, views), sort_keys=False), encoding="utf-8")
    return path
