"""The belt's speed as the tracked objects show it, for the tracker's predictions and the fire times.

The calibrated speed is one figure measured once; a belt's drive wobbles, and a plant changes a
line's speed when its throughput changes. A fire time is the distance to the ejector line divided by
the speed, so a belt 10 % faster than calibrated puts the air 10 % of that distance (40 mm at the
simulated site) behind every object. Each object seen whole in two frames in a row gives a sample
(its centre's travel over the time between the frames); the speed is the median of the samples of
the last `window_s`, so that a mismatched pair of tracks or a mask that changed shape is outvoted.
Samples further than `MAX_DEVIATION` from the calibrated speed are refused (a track that jumped to a
neighbour). Until `min_samples` are in the window the calibrated speed stands; on a stretch of
empty belt, the last measured speed.
"""

from __future__ import annotations

import statistics
from collections import deque

MAX_DEVIATION = 0.5  # samples outside calibrated x (1 +/- this) are not the belt's


class BeltSpeedMeter:
    def __init__(self, calibrated_mm_s: float, window_s: float = 2.0, min_samples: int = 10) -> None:
        self.calibrated_mm_s = calibrated_mm_s
        self.window_ns = round(window_s * 1e9)
        self.min_samples = min_samples
        self.refused = 0
        self._samples: deque[tuple[int, float]] = deque()
        self._measured: float | None = None

    def add(self, travel_mm: float, seconds: float, at_ns: int) -> None:
        """One object's travel along the belt between two frames `seconds` apart, the later at `at_ns`."""
        speed = travel_mm / seconds
        if abs(speed - self.calibrated_mm_s) > MAX_DEVIATION * self.calibrated_mm_s:
            self.refused += 1
            return
        self._samples.append((at_ns, speed))

    def speed_mm_s(self, now_ns: int) -> float:
        """The median of the samples of the last `window_s` before `now_ns`; with fewer than
        `min_samples` of them, the last such median, or the calibrated speed before the first."""
        while self._samples and self._samples[0][0] < now_ns - self.window_ns:
            self._samples.popleft()
        if len(self._samples) >= self.min_samples:
            self._measured = statistics.median(speed for _, speed in self._samples)
        return self.calibrated_mm_s if self._measured is None else self._measured
