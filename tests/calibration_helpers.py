"""Known cameras and simulated belts for calibration tests: the truth every estimate is checked against."""

from __future__ import annotations

import cv2
import numpy as np

from calibration import BeltPlane
from edge.config import CameraConfig, SimulatorConfig
from edge.sources.simulated import SimulatedCamera

TRUE_MATRIX = np.array([[520.0, 0.0, 322.0], [0.0, 520.0, 238.0], [0.0, 0.0, 1.0]])
TRUE_DISTORTION = np.array([-0.28, 0.09, 0.0008, -0.0006, 0.0])


def board_poses(
    count: int, seed: int = 0, board_size_mm: tuple[float, float] = (200.0, 150.0)
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tilted board poses about half a metre away, aimed in turn at the image's corners, edges and
    centre, as a technician is told to do: a lens model is only known where the board has been."""
    rng = np.random.default_rng(seed)
    targets = [
        (150, 115),
        (490, 115),
        (150, 365),
        (490, 365),
        (320, 240),
        (320, 115),
        (320, 365),
        (150, 240),
        (490, 240),
    ]
    poses = []
    for index in range(count):
        rotation = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)])
        matrix, _ = cv2.Rodrigues(rotation)
        u, v = targets[(index + seed) % len(targets)]
        ray = np.array(
            [(u - TRUE_MATRIX[0, 2]) / TRUE_MATRIX[0, 0], (v - TRUE_MATRIX[1, 2]) / TRUE_MATRIX[1, 1], 1.0]
        )
        board_centre = np.array([board_size_mm[0] / 2, board_size_mm[1] / 2, 0.0])
        translation = ray * rng.uniform(480, 600) - matrix @ board_centre
        poses.append((rotation, translation))
    return poses


def simulated_pair(
    resolution: tuple[int, int] = (320, 240), fps: float = 10.0, **simulator: object
) -> tuple[SimulatedCamera, SimulatedCamera]:
    config = SimulatorConfig(realtime=False, **simulator)
    return tuple(
        SimulatedCamera(
            CameraConfig(id=camera, kind="simulated", resolution=resolution, fps=fps), config, epoch_ns=0
        )
        for camera in ("c1", "c2")
    )  # type: ignore[return-value]


def local_plane(camera: SimulatedCamera) -> BeltPlane:
    """The camera's own belt coordinates (origin at its image's left edge), as a board there would give."""
    scale = camera.view.mm_per_px
    return BeltPlane(np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0], [0.0, 0.0, 1.0]]))


def clip(camera: SimulatedCamera, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    rendered = [camera.frame_at(seq) for seq in range(frames)]
    return [f.image for f in rendered], np.array([f.capture_ns / 1e9 for f in rendered])


def true_mean_speed(camera: SimulatedCamera, frames: int) -> float:
    end = camera.time_of(frames - 1)
    return (camera.world.belt_offset_mm(end) - camera.world.belt_offset_mm(0.0)) / end
