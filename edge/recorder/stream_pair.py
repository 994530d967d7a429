"""StreamPair: matches C1 and C2 frames taken at the same moment, by capture timestamp.

Both streams arrive in time order, so a waiting frame that the other camera has already overtaken by
more than the tolerance can never be paired: it is counted as unpaired and forgotten. The C2 clock
offset (C2 clock minus C1 clock, from calibration) is removed before comparing, and so is the belt's
travel time from C1 to C2 when calibration knows it: then a pair is the same stretch of belt seen
before and after the sorter, not two views of different belt at one instant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class PairingStats:
    paired: int = 0
    unpaired: dict[str, int] = field(default_factory=lambda: {"c1": 0, "c2": 0})


class StreamPair:
    def __init__(self, tolerance_ns: int, c2_clock_offset_ns: int = 0, belt_lag_ns: int = 0) -> None:
        self.tolerance_ns = tolerance_ns
        self.c2_clock_offset_ns = c2_clock_offset_ns
        self.belt_lag_ns = belt_lag_ns
        self._waiting: dict[str, deque[tuple[int, int]]] = {"c1": deque(), "c2": deque()}
        self._latest: dict[str, int | None] = {"c1": None, "c2": None}
        self.stats = PairingStats()

    def add(self, camera: str, key: int, capture_ns: int) -> tuple[int, int] | None:
        """Offer a frame; returns (c1 key, c2 key) when it completes a pair."""
        t = capture_ns - self.c2_clock_offset_ns - self.belt_lag_ns if camera == "c2" else capture_ns
        other = "c2" if camera == "c1" else "c1"
        self._latest[camera] = t
        self._expire(other, t)
        waiting = self._waiting[other]
        best = min(waiting, key=lambda item: abs(item[0] - t), default=None)
        if best is not None and abs(best[0] - t) <= self.tolerance_ns:
            waiting.remove(best)
            self.stats.paired += 1
            return (key, best[1]) if camera == "c1" else (best[1], key)
        self._waiting[camera].append((t, key))
        return None

    def _expire(self, camera: str, other_latest: int) -> None:
        waiting = self._waiting[camera]
        while waiting and waiting[0][0] < other_latest - self.tolerance_ns:
            waiting.popleft()
            self.stats.unpaired[camera] += 1
