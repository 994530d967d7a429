"""Belt speed from a clip of the running belt: optical flow of its texture, mapped to millimetres.

Objects ride the belt, so they move with it and help rather than hurt; ones that roll or slide are
outvoted by the median. The per-frame travel also gives an odometer (belt millimetres against the
camera's clock), which the camera-offset estimate builds on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.belt_plane import BeltPlane
from calibration.errors import CalibrationError

GRID_STEP_PX = 8
BORDER_FRACTION = 0.1  # texture entering or leaving the view has no match: stay away from the edges
# a frame pair further apart than this many typical frame intervals straddles lost frames: the belt
# may have moved more than the view between them, so optical flow cannot be trusted there
GAP_FACTOR = 1.5


@dataclass(frozen=True)
class BeltMotion:
    """Belt travel seen by one camera: `travel_mm[i]` is how far the belt moved from frame 0 to frame i.

    Across a gap (frames the recorder lost) the travel is bridged at the speed measured on either
    side of it; such pairs are not measurements, so the pair speeds leave them out.
    """

    times_s: np.ndarray  # frame times on this camera's clock
    travel_mm: np.ndarray
    cross_mm: np.ndarray  # drift across the belt per frame pair (should be ~0; 0 across a gap)
    measured: np.ndarray  # per frame pair: False where the pair straddles a gap

    @property
    def pair_speeds_mm_s(self) -> np.ndarray:
        return (np.diff(self.travel_mm) / np.diff(self.times_s))[self.measured]

    @property
    def pair_times_s(self) -> np.ndarray:
        return ((self.times_s[1:] + self.times_s[:-1]) / 2)[self.measured]

    @property
    def cross_speed_mm_s(self) -> float:
        return float(self.cross_mm[self.measured].sum() / np.diff(self.times_s)[self.measured].sum())

    def travel_at(self, t_s: float | np.ndarray) -> np.ndarray:
        """Odometer reading at any time, extrapolated at the clip's mean speed outside it."""
        t = np.asarray(t_s, np.float64)
        mean = (self.travel_mm[-1] - self.travel_mm[0]) / (self.times_s[-1] - self.times_s[0])
        inside = np.interp(t, self.times_s, self.travel_mm)
        before = self.travel_mm[0] + (t - self.times_s[0]) * mean
        after = self.travel_mm[-1] + (t - self.times_s[-1]) * mean
        return np.where(t < self.times_s[0], before, np.where(t > self.times_s[-1], after, inside))


@dataclass(frozen=True)
class BeltSpeed:
    mean_mm_s: float  # total travel over total time: what matters for timing
    median_mm_s: float
    spread_mm_s: float  # standard deviation of the frame-to-frame speeds
    cross_mm_s: float  # mean speed across the belt: large values mean the belt axes are rotated
    pairs: int  # frame pairs measured
    bridged_gaps: int  # pairs across frames the recorder lost, bridged instead of measured


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _global_shift(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The whole image's shift by phase correlation, as DIS's starting flow.

    DIS alone sometimes locks onto the wrong repeat of the belt texture when the belt moves tens of
    pixels between frames; the phase-correlation peak of the whole frame does not, and DIS then only
    refines it (perspective makes the true flow vary across the image).
    """
    (dx, dy), _ = cv2.phaseCorrelate(previous.astype(np.float32), current.astype(np.float32))
    start = np.empty((*previous.shape, 2), np.float32)
    start[..., 0], start[..., 1] = dx, dy
    return start


def check_clip(frames: Sequence[np.ndarray], times_s: Sequence[float], what: str) -> np.ndarray:
    """Frames share one size and times strictly increase; returns the times as an array."""
    if len(frames) < 2 or len(frames) != len(times_s):
        raise CalibrationError(f"{what}: need at least 2 frames with one time each, got {len(frames)} frames")
    shape = frames[0].shape
    for index, frame in enumerate(frames):
        if frame.shape != shape:
            raise CalibrationError(
                f"{what}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                f"frame 0 is {shape[1]}x{shape[0]}"
            )
    times = np.asarray(times_s, np.float64)
    steps = np.diff(times)
    if (steps <= 0).any():
        bad = int(np.argmax(steps <= 0)) + 1
        raise CalibrationError(f"{what}: frame {bad} is not later than frame {bad - 1} (times must increase)")
    return times


def measure_belt_motion(
    frames: Sequence[np.ndarray], times_s: Sequence[float], plane: BeltPlane, what: str = "clip"
) -> BeltMotion:
    """Per-frame belt travel along x (median over a grid of flow vectors mapped through the plane)."""
    times = check_clip(frames, times_s, what)
    intervals = np.diff(times)
    measured = intervals <= GAP_FACTOR * np.median(intervals)
    height, width = frames[0].shape[:2]
    bx, by = int(width * BORDER_FRACTION), int(height * BORDER_FRACTION)
    grid = np.stack(
        np.meshgrid(np.arange(bx, width - bx, GRID_STEP_PX), np.arange(by, height - by, GRID_STEP_PX)), -1
    ).reshape(-1, 2)
    grid_mm = plane.to_belt(grid)
    flow_engine = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    steps, cross = np.zeros(len(intervals)), np.zeros(len(intervals))
    previous = _gray(frames[0])
    for index, frame in enumerate(frames[1:]):
        current = _gray(frame)
        if measured[index]:
            flow = flow_engine.calc(previous, current, _global_shift(previous, current))
            moved = grid + flow[grid[:, 1], grid[:, 0]]
            delta = plane.to_belt(moved) - grid_mm
            steps[index], cross[index] = np.median(delta[:, 0]), np.median(delta[:, 1])
        previous = current
    steps[~measured] = _bridged_speeds(steps / intervals, measured) * intervals[~measured]
    return BeltMotion(times, np.concatenate([[0.0], np.cumsum(steps)]), cross, measured)


def _bridged_speeds(speeds: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Speed across each gap: the mean of the measured pairs just before and just after it. The belt
    speeds up and slows down over seconds, so the odometer drifts by millimetres, not by a view."""
    where = np.flatnonzero(measured)
    following = np.searchsorted(where, np.flatnonzero(~measured))  # a gap at either end has one side
    before = where[np.maximum(following - 1, 0)]
    after = where[np.minimum(following, len(where) - 1)]
    return (speeds[before] + speeds[after]) / 2


def belt_speed(motion: BeltMotion, what: str = "clip") -> BeltSpeed:
    """Summarise the motion; refuses a belt that does not move or moves against the x axis."""
    duration = motion.times_s[-1] - motion.times_s[0]
    mean = (motion.travel_mm[-1] - motion.travel_mm[0]) / duration
    speeds = motion.pair_speeds_mm_s
    cross = motion.cross_speed_mm_s
    if abs(mean) < 1.0:
        raise CalibrationError(
            f"{what}: the belt does not move (measured {mean:.2f} mm/s); record it running"
        )
    if mean < 0:
        raise CalibrationError(
            f"{what}: the belt moves towards -x ({mean:.1f} mm/s) in this camera's belt coordinates; "
            "x must point along the travel direction: redo the belt plane with the board turned round"
        )
    spread = float(np.std(speeds))
    bridged = int((~motion.measured).sum())
    return BeltSpeed(float(mean), float(np.median(speeds)), spread, cross, len(speeds), bridged)
