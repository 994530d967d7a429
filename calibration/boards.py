"""Calibration boards: chessboards and ChArUco boards, their geometry, detection and printing.

ChArUco is the better choice on a belt: it is found even when partly hidden or cut by the image
border, and every corner carries an id. A chessboard must be fully visible. The detection API is
OpenCV >= 4.7's (`cv2.aruco.CharucoDetector`), which is what we pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from calibration.errors import CalibrationError

ARUCO_DICTIONARIES = {
    name: getattr(cv2.aruco, name)
    for name in dir(cv2.aruco)
    if name.startswith("DICT_") and isinstance(getattr(cv2.aruco, name), int)
}


@dataclass(frozen=True)
class BoardDetection:
    """Corners found in one image: pixel positions and their positions on the board in mm."""

    image_points: np.ndarray  # N x 2 float32, pixels
    board_points: np.ndarray  # N x 3 float32, mm on the board (z = 0)


@dataclass(frozen=True)
class Board:
    """A printed board. `columns` x `rows` counts squares (so a chessboard has one corner fewer each way)."""

    kind: Literal["chessboard", "charuco"]
    columns: int
    rows: int
    square_mm: float
    marker_mm: float = 0.0
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.columns < 3 or self.rows < 3:
            raise CalibrationError(f"board {self.describe()}: needs at least 3 x 3 squares")
        if self.square_mm <= 0:
            raise CalibrationError(f"board {self.describe()}: square size must be positive")
        if self.kind == "charuco":
            if not 0 < self.marker_mm < self.square_mm:
                raise CalibrationError(
                    f"board {self.describe()}: marker size must be between 0 and the square size"
                )
            if self.dictionary not in ARUCO_DICTIONARIES:
                raise CalibrationError(
                    f"board {self.describe()}: unknown ArUco dictionary {self.dictionary!r}"
                )

    @classmethod
    def parse(cls, text: str) -> Board:
        """`chessboard:COLSxROWS:SQUARE_MM` or `charuco:COLSxROWS:SQUARE_MM:MARKER_MM[:DICT]`."""
        parts = text.split(":")
        try:
            kind = parts[0]
            columns, rows = (int(n) for n in parts[1].lower().split("x"))
            sizes = [float(n) for n in parts[2:4]]
        except (IndexError, ValueError):
            kind = ""
        if kind == "chessboard" and len(parts) == 3:
            return cls("chessboard", columns, rows, sizes[0])
        if kind == "charuco" and len(parts) in (4, 5):
            return cls("charuco", columns, rows, sizes[0], sizes[1], *parts[4:5])
        raise CalibrationError(
            f"board {text!r}: expected chessboard:COLSxROWS:SQUARE_MM or "
            "charuco:COLSxROWS:SQUARE_MM:MARKER_MM[:DICT_5X5_100]"
        )

    def describe(self) -> str:
        size = f"{self.columns}x{self.rows}:{self.square_mm:g}"
        if self.kind == "charuco":
            return f"charuco:{size}:{self.marker_mm:g}:{self.dictionary}"
        return f"chessboard:{size}"

    @property
    def size_mm(self) -> tuple[float, float]:
        return self.columns * self.square_mm, self.rows * self.square_mm

    def _charuco(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICTIONARIES[self.dictionary])
        return cv2.aruco.CharucoBoard((self.columns, self.rows), self.square_mm, self.marker_mm, dictionary)

    def render(self, px_per_mm: float) -> np.ndarray:
        """The board as a grayscale image, `px_per_mm` pixels per millimetre, no margin (for printing)."""
        width, height = (round(side * px_per_mm) for side in self.size_mm)
        if self.kind == "charuco":
            return self._charuco().generateImage((width, height), marginSize=0, borderBits=1)
        cells = np.indices((self.rows, self.columns)).sum(axis=0) % 2
        squares = np.where(cells == 0, 0, 255).astype(np.uint8)
        return cv2.resize(squares, (width, height), interpolation=cv2.INTER_NEAREST)

    def detect(self, gray: np.ndarray) -> BoardDetection | None:
        """Find the board's corners with sub-pixel accuracy; None when the board is not there."""
        if self.kind == "chessboard":
            pattern = (self.columns - 1, self.rows - 1)
            found, corners = cv2.findChessboardCornersSB(
                gray, pattern, flags=cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
            )
            if not found:
                return None
            grid = np.indices(pattern).T.reshape(-1, 2).astype(np.float32) + 1
            board_points = np.hstack([grid * self.square_mm, np.zeros((len(grid), 1), np.float32)])
            return BoardDetection(corners.reshape(-1, 2).astype(np.float32), board_points)
        board = self._charuco()
        corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
        if ids is None or len(ids) < 6:  # fewer corners than that cannot constrain a pose reliably
            return None
        board_points, image_points = board.matchImagePoints(corners, ids)
        image_points = _refine_charuco_corners(gray, image_points.reshape(-1, 2))
        return BoardDetection(
            image_points.reshape(-1, 2).astype(np.float32), board_points.reshape(-1, 3).astype(np.float32)
        )


def _refine_charuco_corners(gray: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Re-run the sub-pixel corner search on ChArUco corners.

    OpenCV's CharucoDetector up to at least 4.13 returns corners shifted by about +0.5 px (opencv
    issue 25539, fixed upstream by PR 28380). `cornerSubPix` converges to the true saddle point from
    any start inside its window, so running it again removes the bias now and is harmless once the
    fix ships. The window stays well inside one square so it never locks onto a marker corner.
    """
    spacing = np.sqrt(cv2.contourArea(cv2.convexHull(corners.astype(np.float32))) / max(len(corners), 1))
    half_window = int(np.clip(spacing / 6, 2, 10))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 0.001)
    refined = cv2.cornerSubPix(
        gray, corners.reshape(-1, 1, 2).astype(np.float32), (half_window, half_window), (-1, -1), criteria
    )
    return refined.reshape(-1, 2)
