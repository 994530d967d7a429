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
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.config import LiveConfig
from firmware_bridge.messages import BeltObject
from trainer.cams import LABEL_BACKGROUND, LABEL_ILLEGAL, LABEL_LEGAL

UNMATCHED = 1e9


@dataclass
class Track:
    object_id: int
    box: np.ndarray  # x_min, y_min, x_max, y_max in belt mm at `seen_ns`
    seen_ns: int
    capture_ns: int
    votes: float = 0.0  # sum of the illegal shares it was seen with
    hits: int = 0
    missed: int = 0

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

    def _map_to_belt(self, shape: tuple[int, int]) -> np.ndarray:
        """Label-map pixels of a map of `shape` (height, width) to belt mm."""
        scale = np.diag([self.camera_size[0] / shape[1], self.camera_size[1] / shape[0], 1.0])
        return self.pixel_to_belt @ scale

    def _patches(self, labels: np.ndarray, to_belt: np.ndarray) -> list[tuple[np.ndarray, bool, float]]:
        """(belt box, cut by the image border, share of illegal pixels) of each object in the map."""
        mm_per_px = float(np.sqrt(abs(np.linalg.det(to_belt[:2, :2]))))
        objects = (labels != LABEL_BACKGROUND).astype(np.uint8)
        gap_px = round(self.settings.merge_gap_mm / mm_per_px)
        if gap_px >= 1:
            objects = cv2.morphologyEx(objects, cv2.MORPH_CLOSE, np.ones((gap_px + 1, gap_px + 1), np.uint8))
        count, component, stats, _ = cv2.connectedComponentsWithStats(objects, connectivity=8)
        illegal = np.bincount(component[labels == LABEL_ILLEGAL], minlength=count)
        foreground = np.bincount(component[labels != LABEL_BACKGROUND], minlength=count)
        min_px = self.settings.min_area_mm2 / mm_per_px**2
        patches = []
        for index in range(1, count):
            if foreground[index] < min_px:
                continue
            legal = foreground[index] - illegal[index]
            if self.settings.split_classes and min(illegal[index], legal) >= min_px:
                for label, share in ((LABEL_ILLEGAL, 1.0), (LABEL_LEGAL, 0.0)):
                    region = ((component == index) & (labels == label)).astype(np.uint8)
                    patches.extend(self._regions(region, min_px, to_belt, share))
                continue
            x, y, w, h, _ = stats[index]
            share = float(illegal[index] / foreground[index])
            patches.append((_belt_box(to_belt, x, y, x + w, y + h), _cut(x, y, w, h, labels.shape), share))
        return patches

    @staticmethod
    def _regions(region: np.ndarray, min_px: float, to_belt: np.ndarray, share: float):
        """The patches of one class inside a split patch: its connected regions of `min_px` or more."""
        stats = cv2.connectedComponentsWithStats(region, connectivity=8)[2]
        for x, y, w, h, area in stats[1:]:
            if area >= min_px:
                yield _belt_box(to_belt, x, y, x + w, y + h), _cut(x, y, w, h, region.shape), share

    def update(self, labels: np.ndarray, capture_ns: int) -> list[BeltObject]:
        """Track one label map of the frame captured at `capture_ns`; the confirmed objects seen in it."""
        to_belt = self._map_to_belt(labels.shape)
        patches = self._patches(labels, to_belt)
        view_x_max_mm = _belt_box(to_belt, 0, 0, labels.shape[1], labels.shape[0])[2]
        predicted = [track.predicted(capture_ns, self.speed_mm_s) for track in self.tracks]
        cost = np.full((len(self.tracks), len(patches)), UNMATCHED)
        for i, box in enumerate(predicted):
            for j, (patch, _, _) in enumerate(patches):
                distance = float(np.linalg.norm(_centre(box) - _centre(patch)))
                if distance <= self.settings.gate_mm:
                    cost[i, j] = distance
        matched: dict[int, int] = {}
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            matched = {int(j): int(i) for i, j in zip(rows, cols, strict=True) if cost[i, j] < UNMATCHED}
        seen: list[Track] = []
        for j, (patch, cut, share) in enumerate(patches):
            if j in matched:
                track = self.tracks[matched[j]]
                expected = predicted[matched[j]]
                box = (
                    np.concatenate([np.minimum(patch[:2], expected[:2]), np.maximum(patch[2:], expected[2:])])
                    if cut
                    else patch
                )
                track.box, track.seen_ns, track.capture_ns = box, capture_ns, capture_ns
                track.missed = 0
            else:
                track = Track(next(self._ids) % 2**32, patch, capture_ns, capture_ns)
                self.tracks.append(track)
            track.hits += 1
            track.votes += share
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

    def _report(self, track: Track) -> BeltObject:
        x_min, y_min, x_max, y_max = (float(v) for v in track.box)
        cls = "illegal" if track.illegal_share >= self.settings.illegal_share else "legal"
        return BeltObject(
            object_id=track.object_id, cls=cls, x_min_mm=x_min, x_max_mm=x_max, y_min_mm=y_min,
            y_max_mm=y_max, seen_ns=track.seen_ns, speed_mm_s=self.speed_mm_s, capture_ns=track.capture_ns,
        )  # fmt: skip
