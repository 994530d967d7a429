"""Calibration: from camera pixels to belt millimetres and milliseconds.

An independent library (OpenCV, NumPy, pydantic): `edge` feeds it images and clips and stores what it
returns in the site's calibration file. See docs/calibration.md.
"""

from calibration.actuators import ActuatorGeometry
from calibration.belt_plane import (
    BeltPlane,
    BeltPlaneFit,
    fit_belt_plane,
    fit_belt_plane_from_board,
    fit_belt_plane_from_markers,
)
from calibration.belt_speed import BeltMotion, BeltSpeed, belt_speed, measure_belt_motion
from calibration.boards import Board, BoardDetection
from calibration.calibration_file import CalibrationFile, load_calibration, save_calibration
from calibration.errors import CalibrationError
from calibration.intrinsics import Intrinsics, IntrinsicsReport, Undistorter, calibrate_intrinsics
from calibration.offsets import CameraOffsets, estimate_camera_offsets
from calibration.overlay import draw_validation

__all__ = [
    "ActuatorGeometry",
    "BeltMotion",
    "BeltPlane",
    "BeltPlaneFit",
    "BeltSpeed",
    "Board",
    "BoardDetection",
    "CalibrationError",
    "CalibrationFile",
    "CameraOffsets",
    "Intrinsics",
    "IntrinsicsReport",
    "Undistorter",
    "belt_speed",
    "calibrate_intrinsics",
    "draw_validation",
    "estimate_camera_offsets",
    "fit_belt_plane",
    "fit_belt_plane_from_board",
    "fit_belt_plane_from_markers",
    "load_calibration",
    "measure_belt_motion",
    "save_calibration",
]
