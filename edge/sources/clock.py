"""One time base for both cameras: every frame's capture time on this host's monotonic clock.

Cameras stamp frames with their own clocks (a RealSense's hardware counter, an RTSP stream's
presentation time). Those clocks have exact frame spacing but an unknown origin and drift by tens
of ppm (100+ ms an hour), while the host's arrival time is on the right clock but late by a varying
transport delay. `DeviceClock` keeps the device's spacing and takes the origin from the smallest
delay seen recently: the frame that arrived fastest is the best witness of the true offset, and a
sliding window lets the estimate follow drift.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime, timedelta

DRIFT_WINDOW_NS = 10_000_000_000
MAX_DELAY_NS = 2_000_000_000  # no transport delays a frame this long: the device clock is wrong


class DeviceClock:
    def __init__(self, window_ns: int = DRIFT_WINDOW_NS, max_delay_ns: int = MAX_DELAY_NS) -> None:
        self.window_ns = window_ns
        self.max_delay_ns = max_delay_ns
        self._offsets: deque[tuple[int, int]] = deque()  # (arrival, arrival - device), offsets ascending
        self._last_device_ns: int | None = None
        self._last_host_ns: int | None = None

    def reset(self) -> None:
        """Forget the origin: the device restarted its clock (reconnect, a looped file)."""
        self._offsets.clear()
        self._last_device_ns = self._last_host_ns = None

    def to_host(self, device_ns: int, arrival_ns: int) -> int:
        """The host monotonic time at which a frame stamped `device_ns` was captured."""
        if self._last_device_ns is not None and device_ns <= self._last_device_ns:
            self.reset()
        offset = arrival_ns - device_ns
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()
        self._offsets.append((arrival_ns, offset))
        while self._offsets[0][0] < arrival_ns - self.window_ns:
            self._offsets.popleft()
        host_ns = device_ns + self._offsets[0][1]
        if arrival_ns - host_ns > self.max_delay_ns:  # the camera's clock does not run at real speed
            self.reset()
            return self.to_host(device_ns, arrival_ns)
        if self._last_host_ns is not None:  # a newer, faster witness must not reorder frames
            host_ns = max(host_ns, self._last_host_ns + 1)
        host_ns = min(host_ns, arrival_ns)  # nothing is captured after it arrived
        self._last_device_ns, self._last_host_ns = device_ns, host_ns
        return host_ns


def monotonic_from_utc_ns(utc_ns: int) -> int:
    """A wall-clock time (ns since the epoch) on the monotonic clock, with today's offset between them."""
    return utc_ns + time.monotonic_ns() - time.time_ns()


def utc_from_monotonic(monotonic_ns: int) -> datetime:
    """The wall-clock moment of a monotonic time, with today's offset between the two clocks."""
    return datetime.now(UTC) - timedelta(microseconds=(time.monotonic_ns() - monotonic_ns) / 1000)
