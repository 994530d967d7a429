"""The belt tracker: objects of each label map -> one track per physical object, in belt mm.

An object is a patch of foreground (illegal or legal pixels; patches closer than `merge_gap_mm` are
one, patches smaller than `min_area_mm2` are noise), and its share of illegal pixels is its vote in
this frame; a track's class is decided by its votes so far (illegal when their mean reaches
`illegal_share`): the rule the removal-based object check scores a model's threshold with, and a
mistake in one frame is outvoted by the others. A patch holding an illegal and a legal region each
of at least `min_area_mm2` is taken for two touching objects, not one mixed object (`split_classes`):
each region becomes its own patch, so that the planner can spare the legal one instead of firing
over both (the object check does not split: a departure from its rule, not yet measured). Each
patch's box goes through the calibrated belt plane to belt millimetres; existing tracks are moved on
by the belt's speed to the frame's time and matched to the patches by an optimal assignment on
centre distance (gated at `gate_mm`). A track is reported once it has been seen `min_hits` times,
and again at every later sighting (same object id, refined extent and class), so the planner always
holds its newest estimate. A patch cut by the image border keeps the track's predicted extent on
that side: the object goes on beyond the view.

Each object is also reported as its outline (`BeltObject.outline`): its pixels in belt millimetres,
sliced into bands `outline_band_mm` wide across the belt, each band's extent along the belt. The
planner fires and spares nozzle lanes by it instead of by the box (benchmarks/README.md, "What the
path after the model loses by itself"). A patch cut by the image border does not show the whole
outline: what it shows is added, band by band, to what earlier sightings saw, carried on by the belt.
The belt speed the tracks are moved on by is measured from the tracks themselves
(`live.belt_speed`, `edge/live/belt_speed.py`) unless the calibrated figure is asked for.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.config import LiveConfig
from edge.live.belt_speed import BeltSpeedMeter
from firmware_bridge.messages import Band, BeltObject
from trainer.cams import LABEL_BACKGROUND, LABEL_ILLEGAL, LABEL_LEGAL

UNMATCHED = 1e9
SPEED_SAMPLE_MAX_S = 0.5  # two whole sightings further apart than this give no speed sample


@dataclass
class Track:
    object_id: int
    box: np.ndarray  # x_min, y_min, x_max, y_max in belt mm at `seen_ns`
    seen_ns: int
    capture_ns: int
    votes: float = 0.0  # sum of the illegal shares it was seen with
    hits: int = 0
    missed: int = 0
    bands: np.ndarray | None = None  # band index, y_min, y_max, x_min, x_max per band, at `bands_ns`
    bands_ns: int = 0
    whole_centre: tuple[float, int] | None = None  # centre x (mm) and time of its last sighting uncut

    @property
    def illegal_share(self) -> float:
        return self.votes / self.hits

    def predicted(self, at_ns: int, speed_mm_s: float) -> np.ndarray:
        shift = speed_mm_s * (at_ns - self.seen_ns) / 1e9
        return self.box + np.array([shift, 0.0, shift, 0.0])


def _belt_box(to_belt: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The belt-mm box (x_min, y_min, x_max, y_max) around a pixel rectangle."""
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64).reshape(-1, 1, 2)
    points = cv2.perspectiveTransform(corners, to_belt).reshape(-1, 2)
    return np.array([*points.min(axis=0), *points.max(axis=0)])


def _cut(x: int, y: int, w: int, h: int, shape: tuple[int, int]) -> bool:
    """Touches the image border: the object goes on beyond the view."""
    return x == 0 or y == 0 or x + w == shape[1] or y + h == shape[0]


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


@dataclass
class Patch:
    """One object in one label map: its belt-mm box, whether the image border cuts it, its share of
    illegal pixels, and the bands of what it shows of its outline (None when outlines are off)."""

    box: np.ndarray
    cut: bool
    share: float
    bands: np.ndarray | None
    centre_x_mm: float  # of its pixels where they were mapped (outlines), else of its box


class _Pixels:
    """The foreground pixels of one label map, in belt mm, with their patch and class; grouped by
    patch once, so that finding a patch's pixels does not scan every pixel of the map again (a crowded
    belt has dozens of patches a frame)."""

    def __init__(
        self, labels: np.ndarray, component: np.ndarray, to_belt: np.ndarray, mm_per_px: float
    ) -> None:
        self.rows, self.columns = np.nonzero(labels != LABEL_BACKGROUND)
        self.component = component[self.rows, self.columns]
        self.label = labels[self.rows, self.columns]
        centres = np.stack([self.columns + 0.5, self.rows + 0.5], axis=1).astype(np.float64).reshape(-1, 1, 2)
        self.belt = cv2.perspectiveTransform(centres, to_belt).reshape(-1, 2)
        self.half_px_mm = mm_per_px / 2
        self._by_component = np.argsort(self.component, kind="stable")
        self._starts = np.searchsorted(
            self.component[self._by_component], np.arange(int(component.max()) + 2)
        )

    def of(self, component: int, label: int | None = None) -> np.ndarray:
        """Indices of the pixels of patch `component` (of class `label` only, if given)."""
        chosen = self._by_component[self._starts[component] : self._starts[component + 1]]
        return chosen if label is None else chosen[self.label[chosen] == label]

    def bands(self, chosen: np.ndarray, band_mm: float) -> np.ndarray:
        """Band index, y_min, y_max, x_min, x_max of the chosen pixels (indices) in each band `band_mm`
        wide across the belt (bands on one grid from y = 0, so that neighbours' bands line up); each
        pixel counts whole."""
        points = self.belt[chosen]
        pad = self.half_px_mm
        rows = np.column_stack(
            [
                np.floor(points[:, 1] / band_mm),
                points[:, 1] - pad,
                points[:, 1] + pad,
                points[:, 0] - pad,
                points[:, 0] + pad,
            ]
        )
        return _per_band(rows)


def _per_band(rows: np.ndarray) -> np.ndarray:
    """Rows of (band index, y_min, y_max, x_min, x_max) reduced to one row per band: their union."""
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    starts = np.flatnonzero(np.r_[True, rows[1:, 0] != rows[:-1, 0]])
    return np.column_stack(
        [
            rows[starts, 0],
            np.minimum.reduceat(rows[:, 1], starts),
            np.maximum.reduceat(rows[:, 2], starts),
            np.minimum.reduceat(rows[:, 3], starts),
            np.maximum.reduceat(rows[:, 4], starts),
        ]
    )


class BeltTracker:
    def __init__(
        self, pixel_to_belt: np.ndarray, camera_size: tuple[int, int], speed_mm_s: float, settings: LiveConfig
    ) -> None:
        """`pixel_to_belt`: C1's calibrated plane at `camera_size` (width, height) pixels. Label maps
        may come at any size (the model's input: a swapped model may have another); tracks are in
        belt mm and survive a swap."""
        self.pixel_to_belt = np.asarray(pixel_to_belt, np.float64)
        self.camera_size = camera_size
        self.speed_mm_s = speed_mm_s
        self.settings = settings
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.speed_meter = BeltSpeedMeter(speed_mm_s) if settings.belt_speed == "measured" else None

    def _map_to_belt(self, shape: tuple[int, int]) -> np.ndarray:
        """Label-map pixels of a map of `shape` (height, width) to belt mm."""
        scale = np.diag([self.camera_size[0] / shape[1], self.camera_size[1] / shape[0], 1.0])
        return self.pixel_to_belt @ scale

    def _patches(self, labels: np.ndarray, to_belt: np.ndarray) -> list[Patch]:
        """Each object in the map, as a patch in belt mm."""
        mm_per_px = float(np.sqrt(abs(np.linalg.det(to_belt[:2, :2]))))
        objects = (labels != LABEL_BACKGROUND).astype(np.uint8)
        gap_px = round(self.settings.merge_gap_mm / mm_per_px)
        if gap_px >= 1:
            objects = cv2.morphologyEx(objects, cv2.MORPH_CLOSE, np.ones((gap_px + 1, gap_px + 1), np.uint8))
        count, component, stats, _ = cv2.connectedComponentsWithStats(objects, connectivity=8)
        illegal = np.bincount(component[labels == LABEL_ILLEGAL], minlength=count)
        foreground = np.bincount(component[labels != LABEL_BACKGROUND], minlength=count)
        outlined = self.settings.outline_band_mm > 0 and count > 1
        pixels = _Pixels(labels, component, to_belt, mm_per_px) if outlined else None
        min_px = self.settings.min_area_mm2 / mm_per_px**2
        patches = []
        for index in range(1, count):
            if foreground[index] < min_px or self._too_thin(component, index, stats[index], mm_per_px):
                continue
            legal = foreground[index] - illegal[index]
            if self.settings.split_classes and min(illegal[index], legal) >= min_px:
                x, y, w, h = (int(v) for v in stats[index][:4])
                window = (slice(y, y + h), slice(x, x + w))  # the patch's box: not the whole map again
                for label, share in ((LABEL_ILLEGAL, 1.0), (LABEL_LEGAL, 0.0)):
                    region = ((component[window] == index) & (labels[window] == label)).astype(np.uint8)
                    found = self._regions(
                        region, (x, y), labels.shape, min_px, to_belt, share, pixels, index, label
                    )
                    patches.extend(found)
                continue
            share = float(illegal[index] / foreground[index])
            chosen = None if pixels is None else pixels.of(index)
            patches.append(self._patch(to_belt, stats[index], labels.shape, share, pixels, chosen))
        return patches

    def _too_thin(self, component: np.ndarray, index: int, stat: np.ndarray, mm_per_px: float) -> bool:
        """Whether the patch is narrower than `min_width_mm` across its thinnest direction (a glare
        streak, a belt seam, a strip of label): its rotated bounding rectangle's shorter side."""
        if self.settings.min_width_mm <= 0:
            return False
        x, y, w, h = (int(v) for v in stat[:4])
        rows, columns = np.nonzero(component[y : y + h, x : x + w] == index)
        (_, _), (width, height), _ = cv2.minAreaRect(np.column_stack([columns, rows]).astype(np.float32))
        return (min(width, height) + 1) * mm_per_px < self.settings.min_width_mm

    def _patch(
        self,
        to_belt: np.ndarray,
        stat: np.ndarray,
        shape: tuple[int, ...],
        share: float,
        pixels: _Pixels | None,
        chosen: np.ndarray | None,
    ) -> Patch:
        """The patch of the pixel rectangle `stat` (x, y, w, h, ...) whose pixels are `chosen`."""
        x, y, w, h = (int(v) for v in stat[:4])
        box = _belt_box(to_belt, x, y, x + w, y + h)
        bands, centre_x = None, float(box[0] + box[2]) / 2
        if pixels is not None and chosen is not None:
            bands = pixels.bands(chosen, self.settings.outline_band_mm)
            centre_x = float(pixels.belt[chosen, 0].mean())
        return Patch(box, _cut(x, y, w, h, shape), share, bands, centre_x)

    def _regions(
        self,
        region: np.ndarray,
        origin: tuple[int, int],
        shape: tuple[int, ...],
        min_px: float,
        to_belt: np.ndarray,
        share: float,
        pixels: _Pixels | None,
        component: int,
        label: int,
    ) -> list[Patch]:
        """The patches of one class inside a split patch: its connected regions of `min_px` or more.
        `region` is the split patch's box, whose top-left corner is `origin` in the map of `shape`."""
        _, parts, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        x0, y0 = origin
        in_class = part_of = None
        if pixels is not None:
            in_class = pixels.of(component, label)
            part_of = parts[pixels.rows[in_class] - y0, pixels.columns[in_class] - x0]
        patches = []
        for part, stat in enumerate(stats[1:], start=1):
            if stat[4] < min_px:
                continue
            chosen = None if in_class is None else in_class[part_of == part]
            in_map = np.array([stat[0] + x0, stat[1] + y0, stat[2], stat[3]])
            patches.append(self._patch(to_belt, in_map, shape, share, pixels, chosen))
        return patches

    def update(self, labels: np.ndarray, capture_ns: int) -> list[BeltObject]:
        """Track one label map of the frame captured at `capture_ns`; the confirmed objects seen in it."""
        if self.speed_meter is not None:
            self.speed_mm_s = self.speed_meter.speed_mm_s(capture_ns)
        to_belt = self._map_to_belt(labels.shape)
        patches = self._patches(labels, to_belt)
        view_x_max_mm = _belt_box(to_belt, 0, 0, labels.shape[1], labels.shape[0])[2]
        predicted = [track.predicted(capture_ns, self.speed_mm_s) for track in self.tracks]
        cost = np.full((len(self.tracks), len(patches)), UNMATCHED)
        for i, box in enumerate(predicted):
            for j, patch in enumerate(patches):
                distance = float(np.linalg.norm(_centre(box) - _centre(patch.box)))
                if distance <= self.settings.gate_mm:
                    cost[i, j] = distance
        matched: dict[int, int] = {}
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            matched = {int(j): int(i) for i, j in zip(rows, cols, strict=True) if cost[i, j] < UNMATCHED}
        seen: list[Track] = []
        for j, patch in enumerate(patches):
            if j in matched:
                track = self.tracks[matched[j]]
                expected = predicted[matched[j]]
                box = (
                    np.concatenate(
                        [np.minimum(patch.box[:2], expected[:2]), np.maximum(patch.box[2:], expected[2:])]
                    )
                    if patch.cut
                    else patch.box
                )
                track.box, track.seen_ns, track.capture_ns = box, capture_ns, capture_ns
                track.missed = 0
            else:
                track = Track(next(self._ids) % 2**32, patch.box, capture_ns, capture_ns)
                self.tracks.append(track)
            if patch.bands is not None:
                track.bands = self._outline_seen(track, patch, capture_ns)
                track.bands_ns = capture_ns
            if not patch.cut:
                self._measure_speed(track, patch.centre_x_mm, capture_ns)
            track.hits += 1
            track.votes += patch.share
            seen.append(track)
        seen_ids = {track.object_id for track in seen}
        for index, track in enumerate(self.tracks):
            if track.object_id not in seen_ids:
                track.missed += 1
                track.box, track.seen_ns = predicted[index], capture_ns
        self.tracks = [
            t for t in self.tracks if t.missed <= self.settings.max_missed and t.box[0] <= view_x_max_mm
        ]
        return [self._report(track) for track in seen if track.hits >= self.settings.min_hits]

    def _measure_speed(self, track: Track, centre_x_mm: float, capture_ns: int) -> None:
        """A speed sample from a track seen whole in this frame and, shortly before, in another."""
        if self.speed_meter is not None and track.whole_centre is not None:
            earlier_x, earlier_ns = track.whole_centre
            seconds = (capture_ns - earlier_ns) / 1e9
            if 0 < seconds <= SPEED_SAMPLE_MAX_S:
                self.speed_meter.add(centre_x_mm - earlier_x, seconds, capture_ns)
        track.whole_centre = (centre_x_mm, capture_ns)

    def _outline_seen(self, track: Track, patch: Patch, capture_ns: int) -> np.ndarray:
        """The track's outline after this sighting: the patch's, or, where the image border cuts the
        patch, its union with what earlier sightings saw, carried on by the belt."""
        if not patch.cut or track.bands is None:
            return patch.bands
        earlier = track.bands.copy()
        earlier[:, 3:] += self.speed_mm_s * (capture_ns - track.bands_ns) / 1e9
        return _per_band(np.concatenate([earlier, patch.bands]))

    def _report(self, track: Track) -> BeltObject:
        x_min, y_min, x_max, y_max = (float(v) for v in track.box)
        cls = "illegal" if track.illegal_share >= self.settings.illegal_share else "legal"
        outline: tuple[Band, ...] = ()
        if track.bands is not None:
            shift = self.speed_mm_s * (track.seen_ns - track.bands_ns) / 1e9
            outline = tuple(
                Band(y_min_mm=y0, y_max_mm=y1, x_min_mm=x0 + shift, x_max_mm=x1 + shift)
                for _, y0, y1, x0, x1 in track.bands.tolist()
            )
        return BeltObject(
            object_id=track.object_id, cls=cls, x_min_mm=x_min, x_max_mm=x_max, y_min_mm=y_min,
            y_max_mm=y_max, seen_ns=track.seen_ns, speed_mm_s=self.speed_mm_s, capture_ns=track.capture_ns,
            outline=outline,
        )  # fmt: skip
