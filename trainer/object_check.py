"""The removal-based object check: how well a model finds what the sorter removes, with no annotation.

Objects lie still on the belt. With the site's calibration (each camera's pixels to belt mm, the
belt speed, the C1-to-C2 distance and clock offset), every foreground object C1 saw can be looked
for on the same stretch of belt when it passes C2. Where C2 shows nothing there, the sorter removed
it: a weak positive (`illegal`). Where C2 still shows something, it passed: a weak negative. Objects
C2 never looked at, or saw only partly covered, are left out.

Each object then gets one decision from the model, as the live path makes it: illegal when at least
half of its pixels are illegal in the mask at the threshold. Object precision and recall against the
weak labels need no pixel drawn by anyone, so every run can choose its threshold this way and every
site can be evaluated; label noise (an illegal object the sorter missed counts as a negative) lowers
the figures a little, the same way for every model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy.stats import mannwhitneyu

from trainer.dataset import PreparedSequence
from trainer.manifest import BeltGeometry

CELL_MM = 10.0  # belt cells the C2 occupancy is kept in (at least; see _cell_mm)
MATCH_TOLERANCE_MM = 30.0  # along and across the belt: speed and lateral calibration errors
SAME_OBJECT_MM = 25.0  # two sightings in C1 closer than this on the belt are one object
MIN_SIGHTINGS = 2  # frames an object must be seen whole in: one-frame blobs are flicker or noise
MIN_SEEN = 0.8  # of an object's cells C2 must have looked at
REMOVED_BELOW = 0.25  # C2 foreground over the object's cells below this: removed
PASSED_ABOVE = 0.5  # at least this: passed


@dataclass(frozen=True)
class WeakObject:
    sequence: int  # index of its C1 sequence in the list evaluated
    frame: int
    pixels: np.ndarray  # flat indices into the training-size frame
    removed: bool  # the weak label: C2 no longer showed it


@dataclass(frozen=True)
class ObjectCheckResult:
    threshold: float  # maximises object F1 on the validation objects
    precision: float  # on the test objects, 0-1
    recall: float
    f1: float
    test_objects: int
    validation_objects: int
    removed_objects: int  # weak positives among the test objects
    left_out: int  # objects C2 did not see whole, or saw ambiguously
    auc: float | None = None  # chance a removed object scores above a kept one, over all objects

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Occupancy:
    """C2's foreground per belt cell (u, y): u is the belt position at time 0, fixed to the belt."""

    u_start: float
    y_start: float
    cell_mm: float
    seen: np.ndarray  # pixels that looked at each cell
    foreground: np.ndarray  # of those, foreground ones

    def cells(self, u: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The distinct (u, y) cells these belt points fall in, K x 2."""
        cells = np.stack([(u - self.u_start) // self.cell_mm, (y - self.y_start) // self.cell_mm], 1)
        return np.unique(cells.astype(np.int64), axis=0)

    def rate(self, u_cells: np.ndarray, y_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(looked at, foreground rate) per cell; cells outside the grid were never looked at."""
        inside = (
            (u_cells >= 0) & (u_cells < self.seen.shape[0]) & (y_cells >= 0) & (y_cells < self.seen.shape[1])
        )
        seen = np.zeros(len(u_cells))
        hits = np.zeros(len(u_cells))
        seen[inside] = self.seen[u_cells[inside], y_cells[inside]]
        hits[inside] = self.foreground[u_cells[inside], y_cells[inside]]
        return seen > 0, np.where(seen > 0, hits / np.maximum(seen, 1), 0.0)


def usable(sequence: PreparedSequence) -> bool:
    return sequence.pixel_to_belt is not None and all(t is not None for t in sequence.times)


def _c2_occupancy(sequences: list[PreparedSequence], belt: BeltGeometry) -> _Occupancy | None:
    c2 = [s for s in sequences if s.camera == "c2" and usable(s)]
    if not c2:
        return None
    offset_s = belt.c2_clock_offset_ms / 1000
    tables = []
    for sequence in c2:
        table = sequence.training_size_to_belt()
        times = np.array(sequence.times, np.float64) - offset_s
        tables.append((sequence, table, times))
    cell = _cell_mm(tables[0][1], c2[0].shape)
    u_low = min(float((t[:, 0] + belt.c1_to_c2_mm).min() - belt.speed_mm_s * ts.max()) for _, t, ts in tables)
    u_high = max(
        float((t[:, 0] + belt.c1_to_c2_mm).max() - belt.speed_mm_s * ts.min()) for _, t, ts in tables
    )
    y_low = min(float(t[:, 1].min()) for _, t, _ in tables)
    y_high = max(float(t[:, 1].max()) for _, t, _ in tables)
    shape = (int((u_high - u_low) // cell) + 1, int((y_high - y_low) // cell) + 1)
    seen = np.zeros(shape[0] * shape[1])
    hits = np.zeros_like(seen)
    for sequence, table, times in tables:
        y_cells = ((table[:, 1] - y_low) // cell).astype(np.int64)
        for index, t in enumerate(times):
            u = table[:, 0] + belt.c1_to_c2_mm - belt.speed_mm_s * t
            cells = ((u - u_low) // cell).astype(np.int64) * shape[1] + y_cells
            foreground = sequence.foreground[index].ravel()
            low = int(cells.min())  # one frame covers a few metres of belt: count only there
            local = cells - low
            seen[low : low + int(local.max()) + 1] += np.bincount(local)
            hits[low : low + int(local.max()) + 1] += np.bincount(local, weights=foreground)
    return _Occupancy(u_low, y_low, cell, seen.reshape(shape), hits.reshape(shape))


def _cell_mm(table: np.ndarray, shape: tuple[int, int]) -> float:
    """Cells no smaller than 1.5 training-size pixels of C2: every cell under C2's view is looked at."""
    grid = table.reshape(*shape, 2)
    pixel_mm = max(
        float(np.median(np.linalg.norm(np.diff(grid, axis=0), axis=2))),
        float(np.median(np.linalg.norm(np.diff(grid, axis=1), axis=2))),
    )
    return max(CELL_MM, 1.5 * pixel_mm)


@dataclass(frozen=True)
class _Sighting:
    frame: int
    pixels: np.ndarray  # flat indices into the training-size frame
    u: np.ndarray  # belt position at time 0 of every pixel, mm
    y: np.ndarray  # across the belt, mm


def _sightings(sequence: PreparedSequence, belt: BeltGeometry) -> Iterator[_Sighting]:
    """Every C1 object seen whole in a frame: components of the foreground, large enough to be an
    object and not cut by the image's edge along the belt."""
    width = sequence.shape[1]
    table = sequence.training_size_to_belt()
    grid = table.reshape(*sequence.shape, 2)
    pixel_mm2 = float(np.median(np.abs(np.diff(grid[..., 0], axis=1)))) * float(
        np.median(np.abs(np.diff(grid[..., 1], axis=0)))
    )
    min_pixels = belt.min_object_mm2 / max(pixel_mm2, 1e-9)
    for index, t in enumerate(sequence.times):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            sequence.foreground[index].astype(np.uint8), connectivity=8
        )
        flat = labels.ravel()
        for component in range(1, count):
            x, _, extent, _, area = stats[component]
            if area < min_pixels or x == 0 or x + extent >= width:
                continue
            pixels = np.flatnonzero(flat == component)
            belt_xy = table[pixels]
            yield _Sighting(index, pixels, belt_xy[:, 0] - belt.speed_mm_s * float(t), belt_xy[:, 1])


def _distinct_objects(sequence: PreparedSequence, belt: BeltGeometry) -> list[_Sighting]:
    """Each physical object once, by its fullest sighting, if it was seen whole in MIN_SIGHTINGS
    frames or more: sightings within SAME_OBJECT_MM of each other on the belt are one object."""
    fullest: dict[tuple[int, int], _Sighting] = {}
    counts: dict[tuple[int, int], int] = {}
    for sighting in _sightings(sequence, belt):
        key = (
            round(float(sighting.u.mean()) / SAME_OBJECT_MM),
            round(float(sighting.y.mean()) / SAME_OBJECT_MM),
        )
        twin = next(
            (k for a in (-1, 0, 1) for b in (-1, 0, 1) if (k := (key[0] + a, key[1] + b)) in fullest), None
        )
        seen = counts.pop(twin, 0) + 1 if twin is not None else 1
        if twin is not None and len(fullest[twin].pixels) >= len(sighting.pixels):
            counts[twin] = seen
            continue
        fullest.pop(twin, None)
        fullest[key], counts[key] = sighting, seen
    return [sighting for key, sighting in fullest.items() if counts[key] >= MIN_SIGHTINGS]


def weak_objects(sequences: list[PreparedSequence], belt: BeltGeometry) -> tuple[list[WeakObject], int]:
    """Weakly labelled objects of the held-out C1 sequences, and how many were left out."""
    occupancy = _c2_occupancy(sequences, belt)
    if occupancy is None:
        return [], 0
    found: list[WeakObject] = []
    left_out = 0
    tolerance = int(np.ceil(MATCH_TOLERANCE_MM / occupancy.cell_mm))
    for s, sequence in enumerate(sequences):
        if not (sequence.camera == "c1" and sequence.holdout and usable(sequence)):
            continue
        for sighting in _distinct_objects(sequence, belt):
            removed = _removed(occupancy, sighting.u, sighting.y, tolerance)
            if removed is None:
                left_out += 1
            else:
                found.append(WeakObject(s, sighting.frame, sighting.pixels, removed))
    found.sort(key=lambda o: (o.sequence, o.frame))
    return found, left_out


def _removed(occupancy: _Occupancy, u: np.ndarray, y: np.ndarray, tolerance: int) -> bool | None:
    cells = occupancy.cells(u, y)
    looked, _ = occupancy.rate(cells[:, 0], cells[:, 1])
    if looked.mean() < MIN_SEEN:
        return None
    best = 0.0
    for du in range(-tolerance, tolerance + 1):
        for dy in range(-tolerance, tolerance + 1):
            looked, rate = occupancy.rate(cells[:, 0] + du, cells[:, 1] + dy)
            best = max(best, float(rate[looked].mean()) if looked.any() else 0.0)
    if best < REMOVED_BELOW:
        return True
    return False if best >= PASSED_ABOVE else None


def object_score(before: np.ndarray, after: np.ndarray, pixels: np.ndarray) -> float:
    """The highest threshold at which the object is still called illegal: at least half of its
    pixels have a `before` map at or above it that also beats `after`."""
    values = np.where(after.ravel()[pixels] > before.ravel()[pixels], -1.0, before.ravel()[pixels])
    return float(np.sort(values)[::-1][(len(values) - 1) // 2])


def _scores(scores: np.ndarray, removed: np.ndarray, threshold: float) -> tuple[float, float, float]:
    called = scores >= threshold
    hits = int((called & removed).sum())
    precision = hits / called.sum() if called.any() else 0.0
    recall = hits / removed.sum() if removed.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def ranking_auc(scores: np.ndarray, removed: np.ndarray) -> float | None:
    """Area under the ROC curve of the object scores against what the sorter removed (Mann-Whitney
    U over both counts): no threshold, so every object counts, none is spent choosing one; None
    when the footage has only removed or only kept objects."""
    removed = removed.astype(bool)
    if removed.all() or not removed.any():
        return None
    u = mannwhitneyu(scores[removed], scores[~removed]).statistic
    return round(float(u / (removed.sum() * (~removed).sum())), 4)


def check_objects(
    scores: np.ndarray, removed: np.ndarray, thresholds: tuple[float, ...], left_out: int
) -> ObjectCheckResult:
    """Threshold chosen on the first third of the objects (in recording order), figures on the rest:
    the threshold never sees the objects it is judged on."""
    cut = max(1, len(scores) // 3)
    validation = (scores[:cut], removed[:cut])
    test = (scores[cut:], removed[cut:])
    threshold = max(thresholds, key=lambda t: (_scores(*validation, t)[2], -abs(t - 0.5)))
    precision, recall, f1 = _scores(*test, threshold)
    return ObjectCheckResult(
        auc=ranking_auc(scores, removed),
        threshold=threshold,
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(f1, 4),
        test_objects=len(test[0]),
        validation_objects=len(validation[0]),
        removed_objects=int(test[1].sum()),
        left_out=left_out,
    )
