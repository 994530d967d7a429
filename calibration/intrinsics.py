"""Camera intrinsics from board images: camera matrix, distortion and how well they fit.

A technician hands us a folder of board photos. Every image is either used or listed with the
reason it was not (no board, blurred, wrong size), and a fit whose RMS reprojection error is above
the limit is refused with advice rather than saved: a bad lens model silently bends every belt
coordinate downstream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import Board, BoardDetection
from calibration.errors import CalibrationError

MIN_IMAGES = 5


@dataclass(frozen=True)
class Intrinsics:
    camera_matrix: np.ndarray  # 3 x 3
    dist_coeffs: np.ndarray  # k1, k2, p1, p2, k3
    image_size: tuple[int, int]  # width, height
    rms_px: float

    @property
    def focal_px(self) -> tuple[float, float]:
        return float(self.camera_matrix[0, 0]), float(self.camera_matrix[1, 1])

    def fingerprint(self) -> str:
        """Identifies these parameters, so cached undistortion maps are never used with others."""
        digest = hashlib.sha256()
        for array in (self.camera_matrix, self.dist_coeffs, np.array(self.image_size)):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class IntrinsicsReport:
    intrinsics: Intrinsics
    per_image_rms_px: dict[str, float]
    rejected: dict[str, str]  # image name -> reason


def sharpness(gray: np.ndarray, corners: np.ndarray) -> float:
    """Variance of the Laplacian inside the board's outline: low when the board is out of focus or moved."""
    hull = cv2.convexHull(corners.astype(np.float32)).astype(np.int32)
    region = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(region, hull, 1)
    laplacian = cv2.Laplacian(gray, cv2.CV_64F)
    return float(laplacian[region.astype(bool)].var())


def _to_gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def detect_boards(
    images: Sequence[tuple[str, np.ndarray]], board: Board, min_sharpness: float
) -> tuple[dict[str, BoardDetection], dict[str, str], tuple[int, int]]:
    """Detections of the usable images, reasons for the others, and the image size they share."""
    if not images:
        raise CalibrationError("no calibration images given")
    height, width = images[0][1].shape[:2]
    found: dict[str, BoardDetection] = {}
    rejected: dict[str, str] = {}
    for name, image in images:
        if image.shape[:2] != (height, width):
            rejected[name] = (
                f"size {image.shape[1]}x{image.shape[0]} differs from the first image's {width}x{height}"
            )
            continue
        gray = _to_gray(image)
        detection = board.detect(gray)
        if detection is None:
            rejected[name] = f"board {board.describe()} not found"
            continue
        score = sharpness(gray, detection.image_points)
        if score < min_sharpness:
            rejected[name] = (
                f"blurred (sharpness {score:.0f} < {min_sharpness:.0f}): hold the board still, focus"
            )
            continue
        found[name] = detection
    return found, rejected, (width, height)


def calibrate_intrinsics(
    images: Sequence[tuple[str, np.ndarray]],
    board: Board,
    max_rms_px: float = 1.0,
    min_sharpness: float = 50.0,
    fit_k3: bool = False,
) -> IntrinsicsReport:
    """Fit the pinhole + radial/tangential model (k1, k2, p1, p2[, k3]) to every usable board image.

    k3 stays 0 unless asked for: on ordinary (not fisheye-like) lenses it fits the board points no
    better and bends the image corners wildly wherever no board was held.
    """
    found, rejected, size = detect_boards(images, board, min_sharpness)
    if len(found) < MIN_IMAGES:
        listed = "; ".join(f"{name}: {why}" for name, why in rejected.items()) or "none rejected"
        raise CalibrationError(
            f"only {len(found)} usable board images, at least {MIN_IMAGES} needed ({listed})"
        )
    names = list(found)
    object_points = [found[n].board_points for n in names]
    image_points = [found[n].image_points for n in names]
    flags = 0 if fit_k3 else cv2.CALIB_FIX_K3
    rms, matrix, dist, rvecs, tvecs = cv2.calibrateCamera(
        object_points, image_points, size, None, None, flags=flags
    )
    per_image = {}
    for name, obj, img, rvec, tvec in zip(names, object_points, image_points, rvecs, tvecs, strict=True):
        projected, _ = cv2.projectPoints(obj, rvec, tvec, matrix, dist)
        per_image[name] = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - img) ** 2, axis=1))))
    if rms > max_rms_px:
        worst = max(per_image, key=per_image.get)
        raise CalibrationError(
            f"RMS reprojection error {rms:.2f} px is above the limit of {max_rms_px:.2f} px "
            f"(worst image: {worst}, {per_image[worst]:.2f} px): take more images, tilt the board, "
            "and cover the corners of the image"
        )
    intrinsics = Intrinsics(matrix, dist.reshape(-1)[:5], size, float(rms))
    return IntrinsicsReport(intrinsics, per_image, rejected)


class Undistorter:
    """Undistortion maps for the live path, computed once and cached on disk by intrinsics fingerprint."""

    def __init__(self, intrinsics: Intrinsics, cache_dir: Path | None = None) -> None:
        self.intrinsics = intrinsics
        cache = cache_dir / f"undistort_{intrinsics.fingerprint()}.npz" if cache_dir else None
        if cache is not None and cache.is_file():
            with np.load(cache) as maps:
                self.map_x, self.map_y = maps["map_x"], maps["map_y"]
            return
        self.map_x, self.map_y = cv2.initUndistortRectifyMap(
            intrinsics.camera_matrix, intrinsics.dist_coeffs, None, intrinsics.camera_matrix,
            intrinsics.image_size, cv2.CV_32FC1,
        )  # fmt: skip
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            temp = cache.with_suffix(".tmp.npz")
            np.savez(temp, map_x=self.map_x, map_y=self.map_y)
            temp.replace(cache)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return cv2.remap(image, self.map_x, self.map_y, cv2.INTER_LINEAR)

    def points(self, pixels: np.ndarray) -> np.ndarray:
        """Undistort pixel coordinates (N x 2) into the same ideal image the maps produce."""
        matrix = self.intrinsics.camera_matrix
        ideal = cv2.undistortPoints(
            pixels.reshape(-1, 1, 2).astype(np.float64), matrix, self.intrinsics.dist_coeffs, P=matrix
        )
        return ideal.reshape(-1, 2)
