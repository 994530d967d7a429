"""Where C2 is relative to C1: the distance along the belt and the difference between their clocks.

Two signals both cameras see, shifted:
- the **object stream**: objects lie still on the belt, so the pattern of objects along the belt
  seen by C1 reappears at C2 a fixed distance downstream, minus what the sorter removed. Matching
  the two patterns on each camera's odometer gives the distance, provided we know which C2 moment
  corresponds to which C1 moment, which is the clock offset;
- the **speed wobble**: every belt speeds up and slows down a little, and both cameras see the same
  wobble at the same true instant; matching the two speed curves gives the clock offset.
On a belt whose speed is perfectly steady the clock offset and the distance cannot be told apart
from images (both only delay the stream); then the distance must be measured by hand and the clock
offset follows from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.belt_plane import BeltPlane
from calibration.belt_speed import BeltMotion
from calibration.errors import CalibrationError

PROFILE_BIN_MM = 10.0
LANE_MM = 20.0
MAX_LATERAL_OFFSET_MM = 150.0  # the two cameras' y origins may differ by this much
SPEED_GRID_S = 0.005
MIN_OVERLAP_MM = 2000.0  # of belt both clips saw, over most of its width
MIN_SPEED_CORRELATION = 0.6  # below this the wobble is too weak (or too noisy) to time the cameras
MIN_OBJECT_CORRELATION = 0.22
MIN_PEAK_RATIO = 1.3  # the match must beat any other (100 mm or more away) by this factor
FOREGROUND_SCALE = 8.0  # a difference this many times the typical one counts as fully foreground


@dataclass(frozen=True)
class ObjectProfile:
    """Foreground per belt cell (along x by across y), each cell averaged over every frame that saw it.

    Rows are belt positions relative to the clip's start (`start_mm` + row * PROFILE_BIN_MM along
    the belt), columns are positions across the belt (`y_start_mm` + column * LANE_MM).
    """

    start_mm: float
    y_start_mm: float
    values: np.ndarray  # rows x columns
    seen: np.ndarray  # pixel count per cell; 0 where the camera never looked


@dataclass(frozen=True)
class CameraOffsets:
    c1_to_c2_mm: float
    c2_clock_offset_ms: float  # C2's clock minus C1's
    clock_source: str  # "speed wobble" or "measured distance"
    speed_correlation: float  # peak of the speed curves' correlation (1 = perfect)
    object_correlation: float  # peak of the object patterns' correlation


def _foreground(gray_frames: np.ndarray) -> np.ndarray:
    """How unlike the clip's median background each pixel is, after evening out lighting drift,
    less each pixel's average over the clip.

    Continuous rather than thresholded: clear plastics differ from the belt by little, and a hard
    threshold either loses them or lets belt texture in; the texture is uncorrelated between C1 and
    C2, so it only lowers the match score.
    """
    frames = gray_frames.astype(np.float32)
    brightness = np.median(frames.reshape(len(frames), -1), axis=1)
    frames *= (np.median(brightness) / np.maximum(brightness, 1.0))[:, None, None]
    difference = np.abs(frames - np.median(frames, axis=0))
    full_scale = FOREGROUND_SCALE * max(float(np.median(difference)), 1.0)
    foreground = np.minimum(difference / full_scale, 1.0)
    # what stays put in the image (vignetting, glare, dirt on the lens) moves with neither the belt
    # nor the objects; left in, it would match between the cameras at the wrong distance
    return foreground - foreground.mean(axis=0)


def object_profile(frames: Sequence[np.ndarray], motion: BeltMotion, plane: BeltPlane) -> ObjectProfile:
    """The object pattern on the belt: each belt cell averaged over every frame that saw it."""
    scale = 2  # half resolution: objects are tens of millimetres, cells are 5 x 10
    small = np.stack([
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f, None, fx=1 / scale,
                   fy=1 / scale, interpolation=cv2.INTER_AREA)
        for f in frames
    ])  # fmt: skip
    height, width = small.shape[1:]
    pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).reshape(-1, 2)
    belt = plane.to_belt((pixels + 0.5) * scale - 0.5)
    columns = ((belt[:, 1] - belt[:, 1].min()) / LANE_MM).astype(np.int64)
    lanes = int(columns.max()) + 1
    positions = (motion.travel_mm[:, None] - belt[None, :, 0]).astype(np.float32)  # fixed to the belt
    start = float(positions.min())
    rows = ((positions - start) / PROFILE_BIN_MM).astype(np.int64)
    cells = (rows * lanes + columns[None, :]).ravel()
    foreground = _foreground(small).reshape(len(frames), -1).ravel()
    size = (int(rows.max()) + 1) * lanes
    seen = np.bincount(cells, minlength=size)
    hits = np.bincount(cells, weights=foreground, minlength=size)
    shape = (size // lanes, lanes)
    values, seen = (hits / np.maximum(seen, 1)).reshape(shape), seen.reshape(shape)
    # what spans the whole belt width (splices, cleats, a flicker of light) is the belt's, not an
    # object's: take each row's mean across the belt away
    looked = seen > 0
    row_mean = np.where(looked, values, 0).sum(axis=1) / np.maximum(looked.sum(axis=1), 1)
    return ObjectProfile(
        start, float(belt[:, 1].min()), np.where(looked, values - row_mean[:, None], 0), seen
    )


def _correlate(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Full 2-D cross-correlation sum_i a[i] * b[i + lag] by FFT, indexed [lag_x, lag_y] with wrap."""
    spectrum = np.conj(np.fft.rfft2(a, shape)) * np.fft.rfft2(b, shape)
    return np.fft.irfft2(spectrum, shape)


def masked_correlation(c1: ObjectProfile, c2: ObjectProfile) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of c1's cells with c2's cells shifted by every (x, y) lag, over the cells
    both cameras saw, and how many cells that is (Padfield's masked normalized cross-correlation)."""
    shape = (c1.values.shape[0] + c2.values.shape[0], c1.values.shape[1] + c2.values.shape[1])
    m1, m2 = (c1.seen > 0).astype(float), (c2.seen > 0).astype(float)
    a, b = c1.values * m1, c2.values * m2
    count = np.round(_correlate(m1, m2, shape))
    sum_a, sum_b = _correlate(a, m2, shape), _correlate(m1, b, shape)
    sum_aa, sum_bb = _correlate(a * a, m2, shape), _correlate(m1, b * b, shape)
    sum_ab = _correlate(a, b, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = sum_ab - sum_a * sum_b / count
        variance = (sum_aa - sum_a**2 / count) * (sum_bb - sum_b**2 / count)
        pearson = covariance / np.sqrt(np.maximum(variance, 0))
    return np.where(count > 0, np.nan_to_num(pearson, nan=-1.0), -1.0), count


def _peak(scores: np.ndarray, best: int | None = None) -> tuple[int, float]:
    """Index of the best score (or the given one) with a parabolic sub-step refinement."""
    best = int(np.argmax(scores)) if best is None else best
    if 0 < best < len(scores) - 1:
        left, mid, right = scores[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        if np.isfinite(curvature) and curvature < 0:
            return best, float(0.5 * (left - right) / curvature)
    return best, 0.0


def match_object_profiles(
    c1: ObjectProfile, c2: ObjectProfile, shift_range_mm: tuple[float, float]
) -> tuple[float, float]:
    """Shift (mm, within `shift_range_mm`) with c2's pattern = c1's moved by it, and the correlation there.

    Matching cells along and across the belt (the y origins of the two cameras may differ a little)
    tells objects apart far better than a pattern along the belt alone.
    """
    pearson, count = masked_correlation(c1, c2)
    rows, lanes = pearson.shape
    lag_x = np.arange(rows)
    lag_x = np.where(lag_x < c2.values.shape[0], lag_x, lag_x - rows)  # wrapped negative lags
    lag_y = np.arange(lanes)
    lag_y = np.where(lag_y < c2.values.shape[1], lag_y, lag_y - lanes)
    # c2 row j holds belt position c2.start + j*bin and c1 row i holds c1.start + i*bin; the same
    # spot satisfies c1.start + i*bin + shift = c2.start + j*bin, so j = i + lag
    shifts = lag_x * PROFILE_BIN_MM + c2.start_mm - c1.start_mm
    lateral = lag_y * LANE_MM + c2.y_start_mm - c1.y_start_mm
    min_cells = MIN_OVERLAP_MM / PROFILE_BIN_MM * min(c1.values.shape[1], c2.values.shape[1]) * 0.8
    allowed = (
        ((shifts >= shift_range_mm[0]) & (shifts <= shift_range_mm[1]))[:, None]
        & (np.abs(lateral) <= MAX_LATERAL_OFFSET_MM)[None, :]
        & (count >= min_cells)
    )
    if not allowed.any():
        raise CalibrationError("the clips are too short to compare: record at least a few metres of belt")
    scores = np.where(allowed, pearson, -np.inf)
    best_x, best_y = np.unravel_index(int(np.argmax(scores)), scores.shape)
    quality = float(scores[best_x, best_y])
    if quality < MIN_OBJECT_CORRELATION:
        covered_m = min(c1.values.shape[0], c2.values.shape[0]) * PROFILE_BIN_MM / 1000
        raise CalibrationError(
            f"C1 and C2 clips do not show the same objects (best match {quality:.2f}; each clip covers "
            f"about {covered_m:.1f} m of belt): record both cameras at the same time, long enough for the "
            "belt to travel the C1-to-C2 distance plus 5 m or more"
        )
    elsewhere = np.where(np.abs(shifts - shifts[best_x]) > 100.0, scores.max(axis=1), -np.inf).max()
    if elsewhere > 0 and quality < MIN_PEAK_RATIO * elsewhere:
        raise CalibrationError(
            f"the C1/C2 object match is ambiguous ({quality:.2f} here, {elsewhere:.2f} at another distance): "
            "record longer clips, with objects on the belt"
        )
    _, fraction = _peak(scores[:, best_y], best_x)
    return (lag_x[best_x] + fraction) * PROFILE_BIN_MM + c2.start_mm - c1.start_mm, quality


def match_speed_curves(c1: BeltMotion, c2: BeltMotion, max_offset_s: float) -> tuple[float, float]:
    """Clock offset (s, C2 minus C1) that best aligns the two speed curves, and the correlation there."""
    t1, v1 = c1.pair_times_s, c1.pair_speeds_mm_s
    t2, v2 = c2.pair_times_s, c2.pair_speeds_mm_s
    grid = np.arange(t1[0], t1[-1], SPEED_GRID_S)
    curve1 = np.interp(grid, t1, v1)
    max_lag = int(max_offset_s / SPEED_GRID_S)
    scores = np.full(2 * max_lag + 1, -1.0)
    for k, lag in enumerate(range(-max_lag, max_lag + 1)):
        shifted = grid + lag * SPEED_GRID_S  # C2 clock reading at the same instant
        inside = (shifted >= t2[0]) & (shifted <= t2[-1])
        if inside.sum() < len(grid) // 2:
            continue
        x, y = curve1[inside], np.interp(shifted[inside], t2, v2)
        if x.std() > 0 and y.std() > 0:
            scores[k] = float(np.corrcoef(x, y)[0, 1])
    index, fraction = _peak(scores)
    return (index - max_lag + fraction) * SPEED_GRID_S, float(scores[index])


def estimate_camera_offsets(
    c1_frames: Sequence[np.ndarray], c1_motion: BeltMotion, c1_plane: BeltPlane,
    c2_frames: Sequence[np.ndarray], c2_motion: BeltMotion, c2_plane: BeltPlane,
    measured_distance_mm: float | None = None, distance_range_mm: tuple[float, float] = (300.0, 20000.0),
    max_clock_offset_s: float = 2.0,
) -> CameraOffsets:  # fmt: skip
    """C1-to-C2 distance and clock offset from two clips recorded at the same time.

    Each plane maps its camera's pixels to its own belt coordinates (a board at each camera); the
    distance is how far downstream C2's origin lies from C1's, searched within `distance_range_mm`
    (C2 sits behind the sorter, so never at C1).
    """
    offset_s, speed_score = match_speed_curves(c1_motion, c2_motion, max_clock_offset_s)
    profiles = object_profile(c1_frames, c1_motion, c1_plane), object_profile(c2_frames, c2_motion, c2_plane)
    if measured_distance_mm is None:
        if speed_score < MIN_SPEED_CORRELATION:
            raise CalibrationError(
                f"the belt speed is too steady to time C2 against C1 (speed curves match at {speed_score:.2f}"
                f" < {MIN_SPEED_CORRELATION}): measure the C1-to-C2 distance along the belt and give it"
            )
        # shift = distance - belt travel between the C1 clip's start and the C2 clip's start
        travel_between_starts = float(c1_motion.travel_at(c2_motion.times_s[0] - offset_s))
        low, high = distance_range_mm
        shift_mm, object_score = match_object_profiles(
            *profiles, (low - travel_between_starts, high - travel_between_starts)
        )
        distance = shift_mm + travel_between_starts
        return CameraOffsets(distance, offset_s * 1000, "speed wobble", speed_score, object_score)
    # clocks unknown: look for the stream within what the largest clock offset could shift it by
    expected_shift = measured_distance_mm - float(c1_motion.travel_at(c2_motion.times_s[0]))
    slack = max_clock_offset_s * float(np.median(c1_motion.pair_speeds_mm_s))
    shift_mm, object_score = match_object_profiles(
        *profiles, (expected_shift - slack, expected_shift + slack)
    )
    travel_needed = measured_distance_mm - shift_mm
    c2_start = float(np.interp(travel_needed, c1_motion.travel_mm, c1_motion.times_s))
    if not c1_motion.travel_mm[0] <= travel_needed <= c1_motion.travel_mm[-1]:
        raise CalibrationError(
            f"the measured distance {measured_distance_mm:.0f} mm does not fit the clips (C2's clip "
            "would start outside C1's): record both cameras at the same time"
        )
    offset_ms = (c2_motion.times_s[0] - c2_start) * 1000
    return CameraOffsets(measured_distance_mm, offset_ms, "measured distance", speed_score, object_score)
