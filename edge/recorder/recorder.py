"""`beltcam record`: capture C1 and C2 into the store until told to stop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tqdm import tqdm

from edge.capture.newest import FrameSink
from edge.capture.worker import CaptureWorker
from edge.config import SiteConfig
from edge.recorder.writer import EncodedFrame, FrameWriter
from edge.sources.base import Frame, FrameSource
from edge.store.frame_store import FrameStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingSummary:
    session: str
    recording_ids: tuple[int, ...]
    written: dict[str, int]
    dropped: dict[str, int]
    errors: dict[str, int]
    reconnects: dict[str, int]
    paired: int
    unpaired: dict[str, int]  # frames the other camera had nothing for within the pairing tolerance
    outside: dict[str, int]  # belt the other camera never recorded (before it started, after it ended)
    evicted_frames: int
    seconds: float
    storage_alarm: str | None = None  # why recording was paused when it ended (full disk...)
    unavailable: dict[str, str] = field(default_factory=dict)  # camera -> last error, if it never worked


class Recorder:
    """Records the cameras in `sources`; a camera with a slot in `newest` also hands every frame to it
    (the live path's view of the same capture)."""

    def __init__(
        self,
        config: SiteConfig,
        store: FrameStore,
        sources: dict[str, FrameSource],
        newest: Mapping[str, FrameSink] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.stop_event = threading.Event()
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=config.recorder.queue_size)
        self.workers = {
            camera: CaptureWorker(
                source, self.frames, config.recorder, self.stop_event, (newest or {}).get(camera)
            )
            for camera, source in sources.items()
        }
        self.session_name = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.writer = FrameWriter(store, config, self.session_name, self.workers)

    def stop(self) -> None:
        self.stop_event.set()

    def run(
        self, duration_s: float | None = None, progress: bool = True, status: Callable[[], str] | None = None
    ) -> RecordingSummary:
        """Record until `duration_s` passes or `stop()` is called; always closes its recordings.
        `status` adds a line of the caller's (the live path's counters) to the progress display.

        Frames are encoded on a small thread pool (OpenCV releases the GIL) and written in capture
        order by this thread, the only one that touches files and the index.
        """
        started = time.monotonic()
        deadline = None if duration_s is None else started + duration_s
        bar = tqdm(
            total=duration_s,
            unit="s",
            disable=not progress,
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}",
        )
        threads = self.config.recorder.encoder_threads
        encoding: deque[Future[EncodedFrame]] = deque()
        for worker in self.workers.values():
            worker.start()
        try:
            with ThreadPoolExecutor(threads, thread_name_prefix="encode") as pool:
                while True:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.stop_event.set()
                    if not any(worker.is_alive() for worker in self.workers.values()):
                        self.stop_event.set()  # every camera's stream ended (files, recordings)
                    capturing = not self.stop_event.is_set()
                    try:
                        frame = self.frames.get(timeout=0.02)
                    except queue.Empty:
                        frame = None
                    if frame is not None:
                        encoding.append(pool.submit(self.writer.encode, frame))
                    while encoding and (encoding[0].done() or len(encoding) > 2 * threads):
                        self.writer.write(encoding.popleft().result())
                    if frame is None and not capturing and not encoding:
                        break  # stopped and drained
                    if self.writer.commit_due():
                        self.writer.commit()
                        self._show(bar, started, status)
        finally:
            self.stop_event.set()
            for worker in self.workers.values():
                worker.join(timeout=5)
            while encoding:
                self.writer.write(encoding.popleft().result())
            while not self.frames.empty():  # frames captured after the last read
                self.writer.write(self.writer.encode(self.frames.get_nowait()))
            self.writer.close()
            bar.close()
        return self._summary(time.monotonic() - started)

    def _show(self, bar: tqdm, started: float, status: Callable[[], str] | None) -> None:
        elapsed = time.monotonic() - started
        bar.n = min(elapsed, bar.total) if bar.total else elapsed
        shown = []
        for camera, worker in self.workers.items():
            health = worker.health.peek()
            written = self.writer.written[camera]
            dropped = health.counts.dropped + self.writer.quota_drops[camera]
            shown.append(f"{camera}:{health.state} {written} ok/{dropped} drop")
        if status is not None:
            shown.append(status())
        bar.set_postfix_str(" ".join(shown))

    def _summary(self, seconds: float) -> RecordingSummary:
        health = {camera: worker.health.peek() for camera, worker in self.workers.items()}
        return RecordingSummary(
            session=self.session_name,
            recording_ids=tuple(sorted(self.writer.recording_ids)),
            written=dict(self.writer.written),
            dropped={c: h.counts.dropped + self.writer.quota_drops[c] for c, h in health.items()},
            errors={c: h.counts.failures for c, h in health.items()},
            reconnects={c: h.counts.reconnects for c, h in health.items()},
            paired=self.writer.pairing.stats.paired,
            unpaired=dict(self.writer.pairing.stats.unpaired),
            outside=dict(self.writer.pairing.stats.outside),
            evicted_frames=self.writer.guard.quota.evicted_frames,
            storage_alarm=self.writer.guard.alarm,
            unavailable={
                camera: h.last_error or "no frame"
                for camera, h in health.items()
                if h.counts.frames == 0 and h.last_error
            },
            seconds=seconds,
        )
