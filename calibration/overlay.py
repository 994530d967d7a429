"""The validation picture: the belt grid, nozzle lanes and ejector line drawn over a camera frame.

A technician cannot judge a 3x3 matrix, but sees at once when the 50 mm grid does not sit square on
the belt, when lane 0 is on the wrong edge, or when the ejector line is not where the nozzles are.
The picture says what it shows: mm coordinates on the grid, the origin and the travel direction,
the nozzle numbers, where the ejector line is (or that it is out of view), and a caption naming the
calibration version and the frame it was drawn on.
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


def _text(image: np.ndarray, text: str, where: tuple[int, int], colour, scale: float = 0.4) -> None:
    """Text with a dark outline: readable on a light belt and a dark one."""
    for thickness, ink in ((3, (0, 0, 0)), (1, colour)):
        cv2.putText(image, text, where, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness, cv2.LINE_AA)


def _inside(pixel: np.ndarray, width: int, height: int, margin: int = 4) -> bool:
    return margin <= pixel[0] < width - margin and margin <= pixel[1] < height - margin


def draw_validation(
    frame: np.ndarray,
    plane: BeltPlane,
    actuators: ActuatorGeometry | None = None,
    grid_mm: float = 50.0,
    caption: str | None = None,
) -> np.ndarray:
    """RGB picture; lines every `grid_mm` (every 500 mm thicker) with their mm on the major ones, lanes
    tinted and numbered, the ejector line red, the origin and travel direction marked, `caption`
    (calibration version, frame) on top."""
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
        _text(image, label, (8, height - 10), EJECTOR_COLOUR, 0.45)  # outlined: readable on any belt
        _number_lanes(image, plane, actuators, (x0, y0, x1, y1))
    _label_grid(image, plane, grid_mm, (x0, y0, x1, y1))
    _mark_origin_and_travel(image, plane, (x0, y0, x1, y1))
    header = [f"grid {grid_mm:.0f} mm"] + (caption.split("; ") if caption else [])
    if not _inside(plane.to_pixels(np.array([[0.0, 0.0]]))[0], width, height):
        header.append("origin (0, 0) out of view")
    for row, line in enumerate(header):  # one part a line: a long caption is never cut off
        _text(image, line, (8, 16 + 16 * row), GRID_COLOUR, 0.45)
    return image


def _label_grid(image: np.ndarray, plane: BeltPlane, grid_mm: float, extent) -> None:
    """x a fifth of the way down, y along the right edge, every other grid line, in mm (clear of the
    caption, the lanes' numbers and the ejector line)."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = extent
    step = 2 * grid_mm
    for x in np.arange(np.ceil(x0 / step) * step, x1 + 1e-6, step):
        pixel = plane.to_pixels(np.array([[x, y0 + (y1 - y0) * 0.2]]))[0]  # below the caption lines
        if _inside(pixel, width, height, 12):
            _text(image, f"x{x:.0f}", (int(pixel[0]) + 2, int(pixel[1])), MAJOR_COLOUR)
    for y in np.arange(np.ceil(y0 / step) * step, y1 + 1e-6, step):
        pixel = plane.to_pixels(np.array([[x1, y]]))[0]
        if _inside(pixel - np.array([40, 0]), width, height, 12):
            _text(image, f"y{y:.0f}", (int(pixel[0]) - 40, int(pixel[1]) - 2), MAJOR_COLOUR)


def _mark_origin_and_travel(image: np.ndarray, plane: BeltPlane, extent) -> None:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = extent
    origin = plane.to_pixels(np.array([[0.0, 0.0]]))[0]
    if _inside(origin, width, height):
        cv2.circle(image, (int(origin[0]), int(origin[1])), 6, EJECTOR_COLOUR, 2, cv2.LINE_AA)
        _text(image, "origin", (int(origin[0]) + 8, int(origin[1]) + 14), EJECTOR_COLOUR)
    # an arrow along +x (the belt's travel), low in the view, away from the ejector line's usual place
    low_y = y0 + (y1 - y0) * 0.85
    tail_x = x0 + (x1 - x0) * 0.05
    start, end = plane.to_pixels(np.array([[tail_x, low_y], [tail_x + (x1 - x0) * 0.15, low_y]]))
    cv2.arrowedLine(image, tuple(int(v) for v in start), tuple(int(v) for v in end), (255, 255, 255), 2,
                    cv2.LINE_AA, tipLength=0.3)  # fmt: skip
    _text(image, "travel", (int(start[0]), int(start[1]) - 8), (255, 255, 255))


def _number_lanes(image: np.ndarray, plane: BeltPlane, actuators: ActuatorGeometry, extent) -> None:
    """Each visible nozzle lane's number at its centre, near the ejector line (or the image's middle)."""
    height, width = image.shape[:2]
    x0, _, x1, _ = extent
    line_x = actuators.ejector_line_x_mm
    # beside the ejector line, or between two labelled grid lines mid-view: never on another label
    at_x = line_x if x0 <= line_x <= x1 else (np.floor((x0 + x1) / 200) * 100 + 50)
    for channel in range(actuators.nozzle_count):
        lo, hi = actuators.lane(channel)
        pixel = plane.to_pixels(np.array([[at_x, (lo + hi) / 2]]))[0]
        clear_of_notes = 40 < pixel[1] < height - 28  # the header above, the ejector note below
        if _inside(pixel, width, height, 8) and clear_of_notes:
            where = (int(pixel[0]) + 4, int(pixel[1]) + 4)
            _text(image, str(channel), where, LANE_COLOURS[channel % 2], 0.35)
