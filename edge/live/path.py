"""The live path's loop: the newest C1 frame -> label map -> belt tracks -> planned commands.

It always takes the newest frame (`NewestFrameSlot`): a frame that arrived while the model was busy
is skipped and counted, never queued, so the commands are planned from what the belt shows now.
While C1 is not delivering healthy frames (stalled, failing, stopped) nothing new is planned and
the log says so once; commands already planned still fire, their objects are still on the belt.
A new model is swapped in between two frames; a model that cannot load leaves the current one live.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture.camera_health import FINAL_STATES, OK, PAUSED
from edge.capture.live_view import LiveView
from edge.capture.newest import NewestFrameSlot
from edge.live.segmenter import LiveSegmenter, ModelRefused
from edge.live.tracker import BeltTracker
from edge.sources.base import Frame
from firmware_bridge.messages import BeltObject
from firmware_bridge.planner import EjectionPlanner

log = logging.getLogger(__name__)
PLANNING_STATES = (OK, PAUSED)  # PAUSED: the disk is full, the camera is fine
# latency and stage samples kept: 10 minutes of frames at 10 fps. The panel asks for their percentiles
# every second, under the GIL the live thread needs: 100 000 samples a series took tens of ms a call
KEPT_SAMPLES = 6_000
PLANNED_KEPT = 1024  # far more objects than are ever in view at once
# segment: background, model, fusion, label map; view: the panel's copy; track: components to belt
# objects; plan: removal commands; frame: the whole turn (over the camera's period, frames are skipped)
STAGES = ("segment", "view", "track", "plan", "frame")


@dataclass
class LiveStats:
    processed: int = 0  # frames segmented
    warming_up: int = 0  # frames that went into the background estimate only
    without_model: int = 0  # frames taken while no model was live
    not_planned: int = 0  # frames taken while C1 was unhealthy
    planned_objects: int = 0
    swaps: int = 0  # live models replaced by another (the first one loaded is not a swap)
    first_frame_ns: int | None = None  # when the first frame was segmented (the belt is watched from then)
    refused: list[str] = field(default_factory=list)  # why models were not swapped in
    # capture -> command planned (ms), once per object; capture -> label map (ms), per frame
    plan_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_SAMPLES))
    mask_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_SAMPLES))
    # how long each stage of one frame took (ms), by stage (STAGES): where a frame's time goes when the
    # path falls behind the camera and frames are skipped
    stage_ms: dict[str, deque[float]] = field(
        default_factory=lambda: {stage: deque(maxlen=KEPT_SAMPLES) for stage in STAGES}
    )


class _Laps:
    """Times the stages of one frame into `LiveStats.stage_ms`; `frame` is the whole turn."""

    def __init__(self, stage_ms: dict[str, deque[float]]) -> None:
        self.stage_ms = stage_ms
        self.started_ns = self.last_ns = time.monotonic_ns()

    def lap(self, stage: str) -> None:
        now = time.monotonic_ns()
        self.stage_ms[stage].append((now - self.last_ns) / 1e6)
        self.last_ns = now

    def done(self) -> None:
        self.stage_ms["frame"].append((time.monotonic_ns() - self.started_ns) / 1e6)


class LivePath:
    def __init__(
        self,
        slot: NewestFrameSlot,
        camera_state: Callable[[], str],
        tracker: BeltTracker,
        planner: EjectionPlanner,
        planner_lock: threading.Lock,
        load_model: Callable[[Path], LiveSegmenter],
        view: LiveView | None = None,
    ) -> None:
        self.slot = slot
        self.camera_state = camera_state
        self.tracker = tracker
        self.planner = planner
        self.planner_lock = planner_lock
        self.load_model = load_model
        self.view = view  # the panel's live view: each frame with its label map
        self.stats = LiveStats()
        self.segmenter: LiveSegmenter | None = None
        self._incoming: LiveSegmenter | None = None
        self._swap_lock = threading.Lock()
        self._planned: deque[int] = deque(maxlen=PLANNED_KEPT)  # objects whose latency is counted
        self._said_paused = False
        self.heartbeat_ns = 0

    @property
    def model(self) -> Path | None:
        return None if self.segmenter is None else self.segmenter.info.path

    def offer_model(self, path: Path) -> bool:
        """Load `path` (on the caller's thread) and swap it in before the next frame; a model that is
        refused leaves the live one in place. True when it will be swapped in."""
        try:
            segmenter = self.load_model(path)
        except ModelRefused as refused:
            log.error("live model refused: %s (%s)", refused, self._kept(path))
            self.stats.refused.append(str(refused))
            return False
        with self._swap_lock:
            self._incoming = segmenter
        return True

    def _kept(self, refused: Path) -> str:
        """What stays live after `refused` was: the file itself when the live model is the one it
        loaded earlier, now unusable on disk, is not what acts on the belt (the copy in memory is)."""
        if self.model is None:
            return "no model is live"
        if self.model.resolve() == refused.resolve():
            return ("the model loaded from it earlier stays live from memory; a restart would start "
                    "without a model until another is promoted")  # fmt: skip
        return f"the live model stays {self.model}"

    def _swap(self) -> None:
        with self._swap_lock:
            incoming, self._incoming = self._incoming, None
        if incoming is not None:
            log.info("live model: %s (%s, threshold %.2f from %s)", incoming.info.path, incoming.info.method,
                     incoming.info.threshold, incoming.info.threshold_source)  # fmt: skip
            self.stats.swaps += self.segmenter is not None  # a swap replaces a model; the first load does not
            self.segmenter = incoming

    def step(self, timeout_s: float) -> None:
        """Take the newest frame (waiting up to `timeout_s`) and act on it."""
        frame = self.slot.take(timeout_s)
        if frame is None:
            return
        laps = _Laps(self.stats.stage_ms)
        labels = self._segment(frame)
        laps.lap("segment")
        if self.view is not None:
            self.view.publish("c1", frame.image, labels, frame.capture_ns)
            laps.lap("view")
        if labels is not None:
            objects = self.tracker.update(labels, frame.capture_ns)
            laps.lap("track")
            self._plan(objects)
            laps.lap("plan")
        laps.done()

    def _segment(self, frame: Frame) -> np.ndarray | None:
        """The frame's label map; None while no model is live or the background is warming up."""
        self._swap()
        if self.segmenter is None:
            self.stats.without_model += 1
            return None
        segmentation = self.segmenter.segment(frame.image, frame.capture_ns)
        if segmentation is None:
            self.stats.warming_up += 1
            return None
        self.stats.processed += 1
        if self.stats.first_frame_ns is None:
            self.stats.first_frame_ns = frame.capture_ns
        self.stats.mask_latency_ms.append((time.monotonic_ns() - frame.capture_ns) / 1e6)
        return segmentation.labels

    def _plan(self, objects: list[BeltObject]) -> None:
        state = self.camera_state()
        if state in FINAL_STATES:
            return  # the last frames of a capture that is ending: the agent is stopping
        if state not in PLANNING_STATES:
            self.stats.not_planned += 1
            if not self._said_paused:
                log.warning("C1 is %s: no new removal commands until it delivers again", state)
                self._said_paused = True
            return
        if self._said_paused:
            log.info("C1 delivers again: planning removal commands")
            self._said_paused = False
        with self.planner_lock:
            commands = [self.planner.plan(obj) for obj in objects]
        now = time.monotonic_ns()
        for obj, command in zip(objects, commands, strict=True):
            if command is not None and obj.object_id not in self._planned:
                self._planned.append(obj.object_id)
                self.stats.planned_objects += 1
                self.stats.plan_latency_ms.append((now - obj.capture_ns) / 1e6)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.heartbeat_ns = time.monotonic_ns()  # the agent's watchdog: this loop still turns
            self.step(0.1)
