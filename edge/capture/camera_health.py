"""Each camera's health while recording: state, counters and state changes, for the store and panel.

The capture thread updates it on every frame and failure; the writer thread copies it into the
`camera_status` row and appends state changes to `camera_events` at every commit. Only changes of
state become events, so a camera that stays down for a night leaves one "failing" event with its
reason (and a counter), not one row per reconnect attempt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from datetime import datetime

from edge.sources.base import InvalidFrame, SourceError, SourceStalled
from edge.store.frame_store import utc_now

CONNECTING, OK, STALLED, FAILING, STOPPED = "connecting", "ok", "stalled", "failing", "stopped"
PAUSED = "paused"  # the camera is fine but its frames cannot be stored (full disk): set by the writer
UNAVAILABLE = "unavailable"  # stopped without having delivered a single frame: it never worked
FINAL_STATES = (STOPPED, UNAVAILABLE)  # what a camera is left in when its capture ends


@dataclass(frozen=True)
class HealthEvent:
    utc: datetime
    state: str
    detail: str | None


@dataclass
class CameraCounters:
    """One recording session's counts; the same names as the `camera_status` columns."""

    frames: int = 0
    dropped: int = 0
    stalls: int = 0
    invalid_frames: int = 0
    errors: int = 0
    reconnects: int = 0

    @property
    def failures(self) -> int:
        return self.stalls + self.invalid_frames + self.errors

    @classmethod
    def of(cls, row: object) -> CameraCounters:
        return cls(**{counter.name: getattr(row, counter.name) for counter in fields(cls)})


@dataclass
class HealthSnapshot:
    state: str
    since_utc: datetime
    last_frame_utc: datetime | None = None
    last_error: str | None = None
    counts: CameraCounters = field(default_factory=CameraCounters)
    events: list[HealthEvent] = field(default_factory=list)  # since the previous snapshot


class CameraHealth:
    def __init__(self, camera: str) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        now = utc_now()
        self._snapshot = HealthSnapshot(CONNECTING, now)
        self._events: list[HealthEvent] = [HealthEvent(now, CONNECTING, None)]

    def _enter(self, state: str, detail: str | None) -> None:
        if state != self._snapshot.state:
            now = utc_now()
            self._snapshot.state, self._snapshot.since_utc = state, now
            self._events.append(HealthEvent(now, state, detail))

    def opened(self, reconnect: bool) -> None:
        with self._lock:
            self._snapshot.counts.reconnects += int(reconnect)
            self._enter(OK, "reconnected" if reconnect else "connected")

    def frame(self, capture_utc: datetime, dropped: bool = False) -> None:
        with self._lock:
            self._snapshot.counts.frames += 1
            self._snapshot.counts.dropped += int(dropped)
            self._snapshot.last_frame_utc = capture_utc

    def failed(self, error: SourceError) -> None:
        with self._lock:
            if isinstance(error, SourceStalled):
                self._snapshot.counts.stalls += 1
            elif isinstance(error, InvalidFrame):
                self._snapshot.counts.invalid_frames += 1
            else:
                self._snapshot.counts.errors += 1
            self._snapshot.last_error = str(error)
            self._enter(STALLED if isinstance(error, SourceStalled) else FAILING, str(error))

    def stopped(self, detail: str | None = None) -> None:
        """Capture ended. A camera that never delivered a frame is left `unavailable` with its last
        error, so that a missing file or a wrong address does not look like a camera that ran."""
        with self._lock:
            if self._snapshot.counts.frames == 0 and self._snapshot.last_error:
                self._enter(UNAVAILABLE, f"never delivered a frame: {self._snapshot.last_error}")
            else:
                self._enter(STOPPED, detail)

    def snapshot(self) -> HealthSnapshot:
        """A copy of the current state, with the events since the last call (each handed out once)."""
        with self._lock:
            copy = self._copy(events=self._events)
            self._events = []
        return copy

    def peek(self) -> HealthSnapshot:
        """The current state without taking its events: for progress displays."""
        with self._lock:
            return self._copy(events=[])

    def _copy(self, events: list[HealthEvent]) -> HealthSnapshot:
        counts = CameraCounters(**vars(self._snapshot.counts))
        return HealthSnapshot(**{**vars(self._snapshot), "counts": counts, "events": events})
