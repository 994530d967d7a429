"""The simulated belt as calibration sees it: the site calibration its installation has (written
into the site's calibration file, so that a simulated site is calibrated out of the box), camera
pairs, clips, each camera's own belt plane and the true belt travel. Shared by the agent, the
calibration tests and `benchmarks/calibration.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from calibration import ActuatorGeometry, BeltPlane, CalibrationFile, load_calibration, save_calibration
from calibration.calibration_file import BeltPlaneSection, BeltSection, CameraSection, OffsetsSection
from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera
from edge.simulator.world import CameraView, camera_view
from edge.store.calibrations import save_version
from edge.store.frame_store import FrameStore

# what the simulator's calibration says; a file that differs in any of them is rewritten
SIMULATOR_SECTIONS = {"site", "cameras", "belt", "offsets", "actuators"}
Outcome = Literal["written", "up to date", "kept"]


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
    return _view_plane(camera.view)


def _view_plane(view: CameraView) -> BeltPlane:
    scale = view.mm_per_px
    return BeltPlane(np.diag([scale, scale, 1.0]))


def render_clip(camera: SimulatedCamera, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first `frames` frames and their capture times in seconds on the camera's clock."""
    rendered = [camera.frame_at(seq) for seq in range(frames)]
    return [f.image for f in rendered], np.array([f.capture_ns / 1e9 for f in rendered])


def true_mean_speed(camera: SimulatedCamera, frames: int) -> float:
    """The belt's mean speed over the first `frames` frames, from the world itself."""
    end = camera.time_of(frames - 1)
    return (camera.world.belt_offset_mm(end) - camera.world.belt_offset_mm(0.0)) / end


def simulator_calibration(
    simulator: SimulatorConfig, cameras: list[CameraConfig], site: str = ""
) -> CalibrationFile:
    """The calibration the simulated installation has, exactly (unsaved, version 0): each camera's own
    belt plane as a board at that camera would give it (fit errors 0), the belt's mean speed, C1-to-C2
    distance and C2's clock offset. No lens section: the belt views are rendered straight down without
    distortion, so the planes map raw pixels and nothing needs undoing (the held-up board's lens,
    `simulated_lens`, is left to `calibrate intrinsics`); the simulated nozzle bank as its actuators."""
    ejector = simulator.ejector
    actuators = ActuatorGeometry(
        ejector_line_x_mm=ejector.line_x_mm, nozzle_count=ejector.nozzle_count,
        nozzle_pitch_mm=ejector.pitch_mm, first_nozzle_y_mm=ejector.first_nozzle_y_mm,
        valve_latency_ms=ejector.valve_latency_ms, min_pulse_ms=ejector.min_pulse_ms,
    )  # fmt: skip
    planes = {}
    for camera in cameras:
        plane = _view_plane(camera_view(camera.id, camera.resolution, simulator))
        planes[camera.id] = BeltPlaneSection(
            pixel_to_belt=plane.pixel_to_belt.tolist(),
            method="simulator",
            fit_rms_mm=0.0,
            holdout_rms_mm=0.0,
            holdout_max_mm=0.0,
            holdout_points=0,
            undistorted=False,  # the belt views have no lens distortion to undo
        )
    return CalibrationFile(
        site=site,
        cameras={camera: CameraSection(belt_plane=plane) for camera, plane in planes.items()},
        belt=BeltSection(speed_source="simulator", speed_mm_s=simulator.belt_speed_mm_s),
        offsets=OffsetsSection(
            c1_to_c2_mm=simulator.c1_to_c2_mm,
            c2_clock_offset_ms=simulator.c2_clock_offset_ms,
            clock_source="simulator",
            speed_correlation=1.0,
            object_correlation=1.0,
        ),
        actuators=actuators,
    )


def _content(calibration: CalibrationFile) -> dict:
    return calibration.model_dump(mode="json", include=SIMULATOR_SECTIONS)


def written_by_simulator(calibration: CalibrationFile) -> bool:
    """Every saved version came from the simulator: no technician's step is in it."""
    return bool(calibration.history) and all(entry.step == "simulator" for entry in calibration.history)


def write_simulator_calibration(
    path: Path,
    simulator: SimulatorConfig,
    cameras: list[CameraConfig],
    site: str = "",
    store: FrameStore | None = None,
) -> tuple[Outcome, CalibrationFile]:
    """Write the simulated installation's calibration as the site's calibration file when there is
    none yet, or when the simulator wrote it and its settings changed since; a calibration with any
    technician's step in it is kept. With a store, the version is kept there too (never reused).
    Returns what happened and what the file holds now; an unreadable file raises CalibrationError."""
    current = load_calibration(path)
    if path.exists() and not written_by_simulator(current):
        return "kept", current
    truth = simulator_calibration(simulator, cameras, site)
    if path.exists() and _content(current) == _content(truth):
        return "up to date", current
    updated = current.model_copy(update={name: getattr(truth, name) for name in SIMULATOR_SECTIONS})
    if store is None:
        return "written", save_calibration(updated, path, "simulator")
    return "written", save_version(store, path, updated, "simulator")
