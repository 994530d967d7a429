"""Image-to-belt mapping: a homography from (undistorted) pixels to belt millimetres.

The belt is flat, so one homography is exact for anything lying on it. It is fitted from a ChArUco
board lying on the belt (its corner ids fix the orientation; a plain chessboard cannot tell which
way round it lies) or from surveyed points, and it is always judged on points the fit did not use.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.boards import ARUCO_DICTIONARIES, Board
from calibration.errors import CalibrationError

MIN_POINTS = 4


@dataclass(frozen=True)
class BeltPlane:
    pixel_to_belt: np.ndarray  # 3 x 3, (u, v, 1) -> (x_mm, y_mm, 1)

    @property
    def belt_to_pixel(self) -> np.ndarray:
        return np.linalg.inv(self.pixel_to_belt)

    def to_belt(self, pixels: np.ndarray) -> np.ndarray:
        """N x 2 pixels to N x 2 belt millimetres."""
        return _apply(self.pixel_to_belt, pixels)

    def to_pixels(self, belt_mm: np.ndarray) -> np.ndarray:
        return _apply(self.belt_to_pixel, belt_mm)

    def mm_per_px(self, pixel: tuple[float, float]) -> float:
        """Local scale at a pixel (geometric mean of the two axes; the plane may be seen at an angle)."""
        u, v = pixel
        corners = self.to_belt(np.array([[u, v], [u + 1, v], [u, v + 1]], np.float64))
        jacobian = np.stack([corners[1] - corners[0], corners[2] - corners[0]], axis=1)
        return float(np.sqrt(abs(np.linalg.det(jacobian))))


@dataclass(frozen=True)
class BeltPlaneFit:
    plane: BeltPlane
    fit_rms_mm: float
    holdout_errors_mm: np.ndarray  # one per held-out point

    @property
    def holdout_rms_mm(self) -> float:
        return float(np.sqrt(np.mean(self.holdout_errors_mm**2)))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(points, matrix).reshape(-1, 2)


def _homography(pixels: np.ndarray, belt_mm: np.ndarray) -> np.ndarray:
    matrix, _ = cv2.findHomography(pixels.astype(np.float64), belt_mm.astype(np.float64), 0)
    if matrix is None:
        raise CalibrationError("the points do not determine a homography (are three of them on one line?)")
    return matrix


def fit_belt_plane(
    pixels: np.ndarray, belt_mm: np.ndarray, holdout: np.ndarray | None = None
) -> BeltPlaneFit:
    """Fit from corresponding points; `holdout` marks points kept out of the fit to judge it.

    Without an explicit hold-out set, every point is held out in turn (leave-one-out), which needs
    at least five points; with four the fit is exact and there is nothing to judge it by.
    """
    pixels, belt_mm = np.asarray(pixels, np.float64), np.asarray(belt_mm, np.float64)
    if pixels.shape != belt_mm.shape or pixels.ndim != 2 or pixels.shape[1] != 2:
        raise CalibrationError("image points and belt points must be two matching lists of (x, y) pairs")
    if holdout is not None:
        holdout = np.asarray(holdout, bool)
        used = ~holdout
        if used.sum() < MIN_POINTS or not holdout.any():
            raise CalibrationError(
                f"need at least {MIN_POINTS} fitting points and one held-out point, "
                f"got {used.sum()} and {holdout.sum()}"
            )
        matrix = _homography(pixels[used], belt_mm[used])
        errors = np.linalg.norm(_apply(matrix, pixels[holdout]) - belt_mm[holdout], axis=1)
    else:
        if len(pixels) < MIN_POINTS + 1:
            raise CalibrationError(
                f"need at least {MIN_POINTS + 1} points (4 to fit, the rest to check the fit), "
                f"got {len(pixels)}"
            )
        matrix = _homography(pixels, belt_mm)
        errors = np.array([
            np.linalg.norm(
                _apply(_homography(np.delete(pixels, i, 0), np.delete(belt_mm, i, 0)), pixels[i : i + 1])
                - belt_mm[i]
            )
            for i in range(len(pixels))
        ])  # fmt: skip
        used = np.ones(len(pixels), bool)
    fit_rms = float(np.sqrt(np.mean(np.sum((_apply(matrix, pixels[used]) - belt_mm[used]) ** 2, axis=1))))
    return BeltPlaneFit(BeltPlane(matrix), fit_rms, errors)


def fit_belt_plane_from_board(
    gray: np.ndarray, board: Board, origin_mm: tuple[float, float], holdout_every: int = 4
) -> BeltPlaneFit:
    """A board lying on the belt with its axes along the belt's, its top-left corner at `origin_mm`."""
    if board.kind != "charuco":
        raise CalibrationError(
            f"board {board.describe()}: the belt plane needs a ChArUco board "
            "(a chessboard's orientation is ambiguous)"
        )
    detection = board.detect(gray)
    if detection is None:
        raise CalibrationError(f"board {board.describe()} not found on the belt image")
    belt_mm = detection.board_points[:, :2] + np.asarray(origin_mm, np.float32)
    holdout = np.arange(len(belt_mm)) % holdout_every == holdout_every - 1
    return fit_belt_plane(detection.image_points, belt_mm, holdout)


def fit_belt_plane_from_markers(
    gray: np.ndarray, dictionary: str, positions_mm: dict[int, tuple[float, float]]
) -> BeltPlaneFit:
    """Single ArUco markers lying on the belt at surveyed positions (their centres, in belt mm).

    Handy where no board fits: markers can be spread over the whole view, even on a wide belt.
    Each marker is held out in turn, so at least five must be seen.
    """
    if dictionary not in ARUCO_DICTIONARIES:
        raise CalibrationError(f"unknown ArUco dictionary {dictionary!r}")
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARIES[dictionary]))
    corners, ids, _ = detector.detectMarkers(gray)
    seen = (
        {}
        if ids is None
        else {int(i): c.reshape(4, 2).mean(axis=0) for i, c in zip(ids.ravel(), corners, strict=True)}
    )
    used = sorted(set(seen) & set(positions_mm))
    if len(used) < MIN_POINTS + 1:
        missing = sorted(set(positions_mm) - set(seen))
        raise CalibrationError(
            f"only {len(used)} of the surveyed markers found on the belt image (at least {MIN_POINTS + 1} "
            f"needed; not found: {missing})"
        )
    pixels = np.array([seen[i] for i in used])
    belt_mm = np.array([positions_mm[i] for i in used], np.float64)
    return fit_belt_plane(pixels, belt_mm)
