"""StreamPair: matches C1 and C2 frames taken at the same moment, by capture timestamp.

It pairs whatever it is given with a capture time: the frames themselves (the live path), or the
recorder's index rows once they have ids.

Both streams arrive in time order, so a waiting frame that the other camera has already overtaken by
more than the tolerance can never be paired: it is counted as unpaired and forgotten, unless the
other camera never recorded that stretch of belt at all (it started later, or stopped earlier: with a
C1-to-C2 travel time of 12 s, C2's first 12 s show belt C1 saw before the recording began). Those
are counted as `outside`, not as misses, so that for each camera paired + unpaired + outside adds up
to the frames offered once `finish` has been called. The C2 clock
offset (C2 clock minus C1 clock, from calibration) is removed before comparing, and so is the belt's
travel time from C1 to C2 when calibration knows it: then a pair is the same stretch of belt seen
before and after the sorter, not two views of different belt at one instant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass
class PairingStats:
    paired: int = 0
    unpaired: dict[str, int] = field(default_factory=lambda: {"c1": 0, "c2": 0})  # real misses
    outside: dict[str, int] = field(default_factory=lambda: {"c1": 0, "c2": 0})  # belt the other did not see


class StreamPair(Generic[Item]):
    def __init__(self, tolerance_ns: int, c2_clock_offset_ns: int = 0, belt_lag_ns: int = 0) -> None:
        self.tolerance_ns = tolerance_ns
        self.c2_clock_offset_ns = c2_clock_offset_ns
        self.belt_lag_ns = belt_lag_ns
        self._waiting: dict[str, deque[tuple[int, Item]]] = {"c1": deque(), "c2": deque()}
        self._latest: dict[str, int | None] = {"c1": None, "c2": None}
        self._first: dict[str, int | None] = {"c1": None, "c2": None}
        self.stats = PairingStats()

    def add(self, camera: str, item: Item, capture_ns: int) -> tuple[Item, Item] | None:
        """Offer a frame (or anything standing for one); returns (c1 item, c2 item) when it completes
        a pair."""
        t = capture_ns - self.c2_clock_offset_ns - self.belt_lag_ns if camera == "c2" else capture_ns
        other = "c2" if camera == "c1" else "c1"
        self._latest[camera] = t
        if self._first[camera] is None:
            self._first[camera] = t
        self._expire(other, t)
        waiting = self._waiting[other]
        best = min(waiting, key=lambda entry: abs(entry[0] - t), default=None)
        if best is not None and abs(best[0] - t) <= self.tolerance_ns:
            waiting.remove(best)
            self.stats.paired += 1
            return (item, best[1]) if camera == "c1" else (best[1], item)
        self._waiting[camera].append((t, item))
        return None

    def finish(self) -> None:
        """The recording ended: frames still waiting show belt the other camera never got to see."""
        for camera, waiting in self._waiting.items():
            self.stats.outside[camera] += len(waiting)
            waiting.clear()

    def _expire(self, camera: str, other_latest: int) -> None:
        waiting = self._waiting[camera]
        other_first = self._first["c2" if camera == "c1" else "c1"]
        while waiting and waiting[0][0] < other_latest - self.tolerance_ns:
            t, _ = waiting.popleft()
            before_other = other_first is not None and t < other_first - self.tolerance_ns
            (self.stats.outside if before_other else self.stats.unpaired)[camera] += 1
