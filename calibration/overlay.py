"""The validation picture: the belt grid, nozzle lanes and ejector line drawn over a camera frame.

A technician cannot judge a 3x3 matrix, but sees at once when the 50 mm grid does not sit square on
the belt, when lane 0 is on the wrong edge, or when the ejector line is not where the nozzles are.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.actuators import ActuatorGeometry
from calibration.belt_plane import BeltPlane

GRID_COLOUR = (255, 255, 0)
MAJOR_COLOUR = (255, 128, 0)
EJECTOR_COLOUR = (255, 0, 0)
LANE_COLOURS = ((0, 200, 255), (0, 255, 120))


def _belt_extent(plane: BeltPlane, width: int, height: int) -> tuple[float, float, float, float]:
    corners = plane.to_belt(
        np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], float)
    )
    return corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()


def _polyline(image: np.ndarray, plane: BeltPlane, belt_points: np.ndarray, colour, thickness: int) -> None:
    pixels = np.round(plane.to_pixels(belt_points)).astype(np.int32)
    cv2.polylines(image, [pixels.reshape(-1, 1, 2)], False, colour, thickness, cv2.LINE_AA)


def draw_validation(
    frame: np.ndarray, plane: BeltPlane, actuators: ActuatorGeometry | None = None, grid_mm: float = 50.0
) -> np.ndarray:
    """RGB picture; lines every `grid_mm` (every 500 mm thicker), lanes tinted, the ejector line red."""
    image = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _belt_extent(plane, width, height)
    if actuators is not None:
        tint = image.copy()
        for channel in range(actuators.nozzle_count):
            lo, hi = actuators.lane(channel)
            if hi < y0 or lo > y1:
                continue
            strip = np.array([[x0, lo], [x1, lo], [x1, hi], [x0, hi]])
            pixels = np.round(plane.to_pixels(strip)).astype(np.int32)
            cv2.fillPoly(tint, [pixels], LANE_COLOURS[channel % 2])
        image = cv2.addWeighted(tint, 0.25, image, 0.75, 0)
    ys = np.linspace(y0, y1, 32)
    xs = np.linspace(x0, x1, 32)
    for x in np.arange(np.ceil(x0 / grid_mm) * grid_mm, x1 + 1e-6, grid_mm):
        major = abs(x / (10 * grid_mm) - round(x / (10 * grid_mm))) < 1e-6
        _polyline(
            image,
            plane,
            np.stack([np.full_like(ys, x), ys], 1),
            MAJOR_COLOUR if major else GRID_COLOUR,
            2 if major else 1,
        )
    for y in np.arange(np.ceil(y0 / grid_mm) * grid_mm, y1 + 1e-6, grid_mm):
        major = abs(y / (10 * grid_mm) - round(y / (10 * grid_mm))) < 1e-6
        _polyline(
            image,
            plane,
            np.stack([xs, np.full_like(xs, y)], 1),
            MAJOR_COLOUR if major else GRID_COLOUR,
            2 if major else 1,
        )
    if actuators is not None:
        line_x = actuators.ejector_line_x_mm
        if x0 <= line_x <= x1:
            _polyline(image, plane, np.stack([np.full_like(ys, line_x), ys], 1), EJECTOR_COLOUR, 3)
            label = "ejector line"
        else:
            side = "downstream" if line_x > x1 else "upstream"
            label = f"ejector line at x = {line_x:.0f} mm ({side}, out of view)"
        cv2.putText(
            image, label, (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, EJECTOR_COLOUR, 1, cv2.LINE_AA
        )
    cv2.putText(
        image, f"grid {grid_mm:.0f} mm", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, GRID_COLOUR, 1, cv2.LINE_AA
    )
    return image
