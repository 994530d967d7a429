"""Boards, intrinsics and undistortion, checked against cameras whose true parameters we chose.

Stated tolerances (an 8x6 chessboard of 25 mm squares in 12 tilted views about 0.5 m away, 640x480,
true fx = fy = 520 px, k1 = -0.28, k2 = 0.09): focal length within 1 %, principal point within 8 px,
k1 within 0.02, and the radial shift the model gives a point 250 px from the centre (about -15 px)
within 0.5 px (k1 and k2 trade off against each other, so we also compare what they do together).
ChArUco corners are less precise (RMS about 0.35 px): focal within 1.5 %, k1 within 0.03. Even with
exact corners plus 0.1 px of noise this setup gives about 0.5 % focal error: the tolerance is the
geometry's, not the detector's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import Board, CalibrationError, Undistorter, calibrate_intrinsics
from calibration.synthetic import board_poses, render_board_view
from tests.calibration_helpers import TRUE_DISTORTION, TRUE_MATRIX

SIZE = (640, 480)


def _views(board: Board, count: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    return [
        (f"board_{index:02d}.png", render_board_view(board, TRUE_MATRIX, TRUE_DISTORTION, rvec, tvec, SIZE))
        for index, (rvec, tvec) in enumerate(board_poses(TRUE_MATRIX, board, count, seed))
    ]


def _radial_shift_px(matrix: np.ndarray, dist: np.ndarray, radius_px: float = 250.0) -> float:
    """How far the lens model moves a point `radius_px` from the centre (k1, k2 and focal together)."""
    focal = (matrix[0, 0] + matrix[1, 1]) / 2
    r = radius_px / focal
    return float(focal * r * (dist[0] * r**2 + dist[1] * r**4))


def test_board_specs_parse_and_bad_ones_are_explained():
    assert Board.parse("chessboard:9x6:25") == Board("chessboard", 9, 6, 25.0)
    assert Board.parse("charuco:7x5:40:30:DICT_4X4_50").dictionary == "DICT_4X4_50"
    for bad, reason in [
        ("chessboard:9x6", "expected"),
        ("charuco:7x5:40:50", "marker size"),
        ("charuco:7x5:40:30:DICT_NOPE", "unknown ArUco dictionary"),
        ("chessboard:2x6:25", "at least 3 x 3"),
    ]:
        with pytest.raises(CalibrationError, match=reason):
            Board.parse(bad)


def test_rendered_view_obeys_projectpoints():
    """The test renderer itself: corners land where OpenCV's forward model puts them."""
    board = Board.parse("chessboard:8x6:25")
    rvec, tvec = board_poses(TRUE_MATRIX, board, 1, seed=3)[0]
    view = render_board_view(board, TRUE_MATRIX, TRUE_DISTORTION, rvec, tvec, SIZE)
    detection = board.detect(view)
    projected, _ = cv2.projectPoints(detection.board_points, rvec, tvec, TRUE_MATRIX, TRUE_DISTORTION)
    errors = np.linalg.norm(projected.reshape(-1, 2) - detection.image_points, axis=1)
    # a chessboard's corner order may come out rotated by 180 degrees; try both
    flipped = np.linalg.norm(projected.reshape(-1, 2)[::-1] - detection.image_points, axis=1)
    best = errors if errors.mean() < flipped.mean() else flipped
    assert best.mean() < 0.25 and best.max() < 0.6


def test_chessboard_intrinsics_recovered_and_bad_images_listed():
    board = Board.parse("chessboard:8x6:25")
    images = _views(board, 12)
    images.append(("blank.png", np.full((480, 640), 110, np.uint8)))
    images.append(("blurred.png", cv2.GaussianBlur(images[0][1], (0, 0), 3)))
    images.append(("small.png", cv2.resize(images[1][1], (320, 240))))
    report = calibrate_intrinsics(images, board)
    found = report.intrinsics
    fx, fy = found.focal_px
    assert abs(fx / 520 - 1) < 0.01 and abs(fy / 520 - 1) < 0.01
    assert np.abs(found.camera_matrix[:2, 2] - TRUE_MATRIX[:2, 2]).max() < 8.0
    true_shift = _radial_shift_px(TRUE_MATRIX, TRUE_DISTORTION)  # about -15 px
    assert abs(_radial_shift_px(found.camera_matrix, found.dist_coeffs) - true_shift) < 0.5
    assert abs(found.dist_coeffs[0] - TRUE_DISTORTION[0]) < 0.02
    assert found.rms_px < 0.3
    assert "not found" in report.rejected["blank.png"]
    assert "blurred" in report.rejected["blurred.png"]
    assert "320x240 differs" in report.rejected["small.png"]
    assert set(report.per_image_rms_px) >= {name for name, _ in images[1:8]}


def test_charuco_intrinsics_recovered():
    board = Board.parse("charuco:8x6:25:18")
    report = calibrate_intrinsics(_views(board, 9, seed=1), board)
    fx, fy = report.intrinsics.focal_px
    assert abs(fx / 520 - 1) < 0.015 and abs(fy / 520 - 1) < 0.015
    assert abs(report.intrinsics.dist_coeffs[0] - TRUE_DISTORTION[0]) < 0.03
    assert report.intrinsics.rms_px < 0.5


def test_too_few_images_and_poor_fits_are_refused_with_advice():
    board = Board.parse("chessboard:8x6:25")
    images = _views(board, 6, seed=2)
    with pytest.raises(CalibrationError, match=r"only 2 usable board images.*blank.png: board .* not found"):
        calibrate_intrinsics([*images[:2], ("blank.png", np.zeros((480, 640), np.uint8))], board)
    with pytest.raises(CalibrationError, match=r"above the limit of 0\.01 px.*cover the corners"):
        calibrate_intrinsics(images, board, max_rms_px=0.01)
    with pytest.raises(CalibrationError, match="no calibration images"):
        calibrate_intrinsics([], board)


def test_undistortion_maps_are_cached_and_straighten_the_lens(tmp_path):
    board = Board.parse("chessboard:8x6:25")
    intrinsics = calibrate_intrinsics(_views(board, 8), board).intrinsics
    undistort = Undistorter(intrinsics, tmp_path)
    cached = list(tmp_path.glob("undistort_*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = Undistorter(intrinsics, tmp_path)
    assert cached[0].stat().st_mtime_ns == stamp and np.array_equal(again.map_x, undistort.map_x)
    # straight rows of corners, bent by the lens near the image corner, are straight again
    rvec, tvec = board_poses(TRUE_MATRIX, board, 1, seed=0)[0]
    view = render_board_view(board, TRUE_MATRIX, TRUE_DISTORTION, rvec, tvec, SIZE)
    assert _largest_bend_px(board.detect(view).image_points) > 1.0
    assert _largest_bend_px(board.detect(undistort(view)).image_points) < 0.4


def _largest_bend_px(corners: np.ndarray) -> float:
    """How far the inner corners of each row of a 7 x 5 corner grid stray from the row's chord."""
    bends = []
    for row in corners.reshape(5, 7, 2):
        direction = (row[-1] - row[0]) / np.linalg.norm(row[-1] - row[0])
        bends.append(np.abs((row - row[0]) @ np.array([-direction[1], direction[0]])).max())
    return float(max(bends))
