"""What a site's calibration must give the live path, checked before anything starts; light to
import, so that the command line can name the problem without loading the inference stack."""

from __future__ import annotations

import numpy as np

from calibration import CalibrationFile


class LiveUnavailable(ValueError):
    """Why this site cannot run the live path (`beltcam record` records without it)."""


def belt_velocity_px_s(
    calibration: CalibrationFile, camera: str, size: tuple[int, int]
) -> tuple[float, float]:
    """The belt's motion in the camera's pixels per second at its image centre (`size`: width,
    height), from its belt plane and the belt speed."""
    plane = calibration.camera(camera).belt_plane.to_plane()
    centre = plane.to_belt(np.array([[size[0] / 2, size[1] / 2]]))[0]
    moved = plane.to_pixels(np.stack([centre, centre + np.array([calibration.belt.speed_mm_s, 0.0])]))
    return tuple(float(v) for v in moved[1] - moved[0])


def live_geometry_problem(calibration: CalibrationFile) -> str | None:
    """What the calibration lacks for the live path (None when it has everything)."""
    if calibration.camera("c1").belt_plane is None:
        return "C1 has no belt plane (beltcam calibrate plane)"
    if calibration.belt.speed_mm_s is None and calibration.belt.speed_source == "encoder":
        # the agent has no encoder input; a clip gives the speed the tracks start from, and the live
        # path follows the belt's changes from there (live.belt_speed: measured)
        return (
            "the belt speed comes from an encoder, which the live path cannot read: also run `beltcam "
            "calibrate speed` on a clip of the running belt (the encoder's figure is kept)"
        )
    if calibration.belt.speed_mm_s is None:
        return "no belt speed (beltcam calibrate speed)"
    if calibration.actuators is None:
        return "no actuators (beltcam calibrate actuators)"
    return None
