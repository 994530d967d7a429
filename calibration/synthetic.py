"""What a known camera sees of a board: the reference that tests and benchmarks check estimates against.

Each output pixel is traced back through the lens model (undistortion) and the pinhole to the board
plane, so the picture obeys exactly the model that `cv2.projectPoints` uses forwards.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.boards import ARUCO_DICTIONARIES, Board

PAPER_MARGIN_SQUARES = 1.0  # white paper around the printed board, as a real print has


def _exact_rays(pixels: np.ndarray, camera_matrix: np.ndarray, dist_coeffs: np.ndarray) -> np.ndarray:
    """Normalized image coordinates of pixels (N x 2), iterated to convergence: the default five
    iterations of `cv2.undistortPoints` leave pixel-sized errors in the corners of a wide lens."""
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    rays = cv2.undistortPointsIter(pixels.reshape(-1, 1, 2), camera_matrix, dist_coeffs, None, None, criteria)
    return rays.reshape(-1, 2)


def render_board_view(
    board: Board,
    camera_matrix: np.ndarray,
    dist_coeffs: np.ndarray,
    rvec: np.ndarray,
    tvec: np.ndarray,
    image_size: tuple[int, int],
    px_per_mm: float = 4.0,
    background: int = 110,
) -> np.ndarray:
    """Grayscale image (height x width) of the board posed at (rvec, tvec) in camera coordinates (mm)."""
    width, height = image_size
    margin_mm = PAPER_MARGIN_SQUARES * board.square_mm
    margin_px = round(margin_mm * px_per_mm)
    printed = cv2.copyMakeBorder(board.render(px_per_mm), *(margin_px,) * 4, cv2.BORDER_CONSTANT, value=255)

    pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).reshape(-1, 1, 2)
    normalized = _exact_rays(pixels.astype(np.float64), camera_matrix, dist_coeffs)
    rays = np.hstack([normalized, np.ones((len(normalized), 1))])
    rotation, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    translation = np.asarray(tvec, np.float64).reshape(3)
    normal = rotation[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (normal @ translation) / (rays @ normal)
    on_board = (rotation.T @ (rays * depth[:, None] - translation).T).T  # mm in the board's frame
    behind = ~(depth > 0)
    map_x = ((on_board[:, 0] + margin_mm) * px_per_mm - 0.5).astype(np.float32)
    map_y = ((on_board[:, 1] + margin_mm) * px_per_mm - 0.5).astype(np.float32)
    map_x[behind] = -1e6
    view = cv2.remap(
        printed, map_x.reshape(height, width), map_y.reshape(height, width), cv2.INTER_AREA,
        borderMode=cv2.BORDER_CONSTANT, borderValue=background,
    )  # fmt: skip
    return view


def place_board_on_belt(
    frame: np.ndarray,
    pixel_to_belt: np.ndarray,
    board: Board,
    origin_mm: tuple[float, float],
    px_per_mm: float = 4.0,
) -> np.ndarray:
    """Paste a board lying flat on the belt (axes along the belt's, top-left square corner at origin_mm)."""
    printed = board.render(px_per_mm)
    board_px_to_belt = np.array(
        [[1 / px_per_mm, 0, origin_mm[0]], [0, 1 / px_per_mm, origin_mm[1]], [0, 0, 1]], np.float64
    )
    board_px_to_image = np.linalg.inv(pixel_to_belt) @ board_px_to_belt
    height, width = frame.shape[:2]
    warped = cv2.warpPerspective(printed, board_px_to_image, (width, height), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.full_like(printed, 255), board_px_to_image, (width, height)) > 127
    result = frame.copy()
    result[inside] = warped[inside][:, None] if frame.ndim == 3 else warped[inside]
    return result


def board_poses(
    camera_matrix: np.ndarray,
    board: Board,
    count: int,
    seed: int = 0,
    image_size: tuple[int, int] = (640, 480),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tilted board poses about half a metre away, aimed in turn at the image's corners, edges and
    centre, as a technician is told to hold them: a lens model is only known where the board has been."""
    width, height = image_size
    fractions = [(0.23, 0.24), (0.77, 0.24), (0.23, 0.76), (0.77, 0.76), (0.5, 0.5), (0.5, 0.24), (0.5, 0.76),
                 (0.23, 0.5), (0.77, 0.5)]  # fmt: skip
    rng = np.random.default_rng(seed)
    centre = np.array([board.size_mm[0] / 2, board.size_mm[1] / 2, 0.0])
    poses = []
    for index in range(count):
        rotation = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)])
        matrix, _ = cv2.Rodrigues(rotation)
        fu, fv = fractions[(index + seed) % len(fractions)]
        ray = np.array([
            (fu * width - camera_matrix[0, 2]) / camera_matrix[0, 0],
            (fv * height - camera_matrix[1, 2]) / camera_matrix[1, 1],
            1.0,
        ])  # fmt: skip
        poses.append((rotation, ray * rng.uniform(480, 600) - matrix @ centre))
    return poses


def place_markers_on_belt(
    frame: np.ndarray, pixel_to_belt: np.ndarray, dictionary: str, centres_mm: dict[int, tuple[float, float]],
    side_mm: float, px_per_mm: float = 4.0,
) -> np.ndarray:  # fmt: skip
    """Paste square ArUco markers (white margin of a quarter side) lying flat at belt positions."""
    aruco = cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARIES[dictionary])
    result = frame.copy()
    height, width = frame.shape[:2]
    to_image = np.linalg.inv(pixel_to_belt)
    for marker_id, (x, y) in centres_mm.items():
        side_px = round(side_mm * px_per_mm)
        margin = side_px // 4
        printed = cv2.copyMakeBorder(
            cv2.aruco.generateImageMarker(aruco, marker_id, side_px),
            *(margin,) * 4,
            cv2.BORDER_CONSTANT,
            value=255,
        )
        half = printed.shape[0] / 2 / px_per_mm
        to_belt = np.array(
            [[1 / px_per_mm, 0, x - half], [0, 1 / px_per_mm, y - half], [0, 0, 1]], np.float64
        )
        warped = cv2.warpPerspective(printed, to_image @ to_belt, (width, height), flags=cv2.INTER_AREA)
        inside = cv2.warpPerspective(np.full_like(printed, 255), to_image @ to_belt, (width, height)) > 127
        result[inside] = warped[inside][:, None] if frame.ndim == 3 else warped[inside]
    return result
