"""The agent process (`beltcam run`, `beltcam demo`): recording, the live path, the dispatcher to
the valves and the registry watcher, in one process, each worker supervised.

The recorder runs on the calling thread (it owns the store's writes); the live path, the
dispatcher and the model watcher each run on a thread of their own that is restarted with back-off
when it fails, and counted. `stop()` (SIGTERM, Ctrl-C) ends recording, stops the workers and
releases what is due, then closes the actuator link (the openings already scheduled happen, then
every valve closes) before the command log: the link settles every command still in flight as it
closes, and those outcomes must reach the log. The caller's `open_transport` closing it again is a
no-op.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tenacity import Retrying, retry_if_exception_type, wait_exponential
from tqdm.contrib.logging import logging_redirect_tqdm

from calibration import CalibrationFile
from edge.actuators.link import ActuatorLink, nozzle_bank
from edge.capture.live_view import LiveView
from edge.capture.newest import NewestFrameSlot
from edge.config import SiteConfig
from edge.live.dispatcher import Dispatcher
from edge.live.path import LivePath
from edge.live.segmenter import LiveSegmenter
from edge.live.site_check import LiveUnavailable, belt_velocity_px_s, live_geometry_problem
from edge.live.tracker import BeltTracker
from edge.live.watcher import ModelWatcher
from edge.nightly.scheduler import NightlyScheduler
from edge.panel.app import create_app
from edge.panel.context import PanelContext
from edge.panel.server import PanelServer
from edge.recorder.recorder import Recorder, RecordingSummary
from edge.simulator.truth import SimulatedTruth
from edge.sources.base import FrameSource
from edge.store.command_log import CommandLog
from edge.store.frame_store import FrameStore
from firmware_bridge.planner import EjectionPlanner

log = logging.getLogger(__name__)
RESTART_MAX_S = 30.0


@dataclass(frozen=True)
class AgentSummary:
    recording: RecordingSummary
    report: dict  # the scoreboard (`--report`)
    first_frame_ns: int | None  # when the live path segmented its first frame
    ended_ns: int


def _p50_p99(values: Iterable[float]) -> dict[str, float | None]:
    """Read once (the live thread keeps appending) and sorted once: the panel asks every second."""
    kept = list(values)
    if not kept:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(kept, [50, 99])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1)}


def supervised(name: str, work, stop: threading.Event, restarts: Counter) -> threading.Thread:
    """A thread running `work(stop)`, restarted with exponential back-off (tenacity) when it raises;
    each restart is counted in `restarts[name]` and logged with its traceback."""

    def counted(state) -> None:
        restarts[name] += 1
        log.error(
            "%s failed (%s); restarting in %.1f s", name, state.outcome.exception(), state.next_action.sleep
        )

    def body() -> None:
        retrying = Retrying(
            wait=wait_exponential(multiplier=0.2, max=RESTART_MAX_S),
            retry=retry_if_exception_type(Exception),
            sleep=stop.wait,
            before_sleep=counted,
        )
        for attempt in retrying:
            with attempt:
                work(stop)

    return threading.Thread(target=body, name=name, daemon=True)


def simulated_truth(
    link: ActuatorLink, sources: dict[str, FrameSource], config: SiteConfig
) -> SimulatedTruth | None:
    """The ground truth of this site when it is the simulated belt with the in-process valves."""
    camera = getattr(sources["c1"], "source", None)
    if link.simulator is None or not hasattr(camera, "world"):
        return None
    return SimulatedTruth(link.simulator, camera.world, camera.epoch_ns, nozzle_bank(config.calibration_file))


class Agent:
    def __init__(
        self,
        config: SiteConfig,
        store: FrameStore,
        sources: dict[str, FrameSource],
        link: ActuatorLink,
        calibration: CalibrationFile,
        config_path: Path | None = None,
        restart: Callable[[], None] | None = None,  # the panel's "restart the agent" (edge/cli/restart.py)
        notify: Callable[[str], None] | None = None,  # systemd's sd_notify (edge/cli/systemd_notify.py)
        watchdog_s: float | None = None,  # how often systemd wants a ping: None, no watchdog
    ) -> None:
        self.config = config
        self.store = store
        self.link = link
        self.notify = notify or (lambda _message: None)
        self.watchdog_s = watchdog_s
        self.stop_event = threading.Event()
        self.slot = NewestFrameSlot()
        self.view = LiveView()  # what the panel shows: C1 with its label map, C2 as captured
        self.recorder = Recorder(config, store, sources, newest={"c1": self.slot, "c2": self.view.feed("c2")})
        self.restarts: Counter[str] = Counter()
        self.truth = simulated_truth(link, sources, config)  # None but on the simulated belt
        problem = live_geometry_problem(calibration)
        if problem is not None:
            raise LiveUnavailable(f"{config.calibration_file}: {problem}")
        c1 = next(camera for camera in config.cameras if camera.id == "c1")
        self.planner = EjectionPlanner(
            nozzle_bank(config.calibration_file), lead_ms=config.bridge.lead_ms,
            spare_legal=config.bridge.spare_legal, spare_clearance_mm=config.bridge.spare_clearance_mm,
        )  # fmt: skip
        self.planner_lock = threading.Lock()
        tracker = BeltTracker(
            np.array(calibration.camera("c1").belt_plane.pixel_to_belt),
            c1.resolution,
            calibration.belt.speed_mm_s,
            config.live,
        )
        velocity = belt_velocity_px_s(calibration, "c1", c1.resolution)

        def load(path: Path) -> LiveSegmenter:
            return LiveSegmenter(path, config.live, c1.resolution, velocity)

        health = self.recorder.workers["c1"].health
        self.live = LivePath(
            self.slot, lambda: health.peek().state, tracker, self.planner, self.planner_lock, load, self.view
        )
        self.command_log = CommandLog(store)
        self.dispatcher = Dispatcher(
            self.planner, self.planner_lock, link.transport, self.command_log, config.live.dispatch_ms / 1e3,
            config.live.stop_drain_s,
        )  # fmt: skip
        self.watcher = ModelWatcher(store, self.live, config.live.model_check_s)
        self.view.set_status(self.report)
        self.panel = None
        if config.panel.enabled:  # binds its port now: a port in use stops the agent before it starts
            context = PanelContext(config, store, config_path, self.view, link.transport, self.command_log,
                                   judge=self.truth.recent if self.truth else None,
                                   restart=restart)  # fmt: skip
            self.panel = PanelServer(create_app(context), config.panel, context.stopping)
        # the nightly loop runs `beltcam nightly --config FILE`: it needs the file the agent was started with
        self.nightly = (
            NightlyScheduler(config.schedule, config_path, store.engine)
            if config.schedule.enabled and config_path is not None
            else None
        )

    def stop(self) -> None:
        self.recorder.stop()

    def status_line(self) -> str:
        stats = self.live.stats
        running = self.truth.running(stats.first_frame_ns) if self.truth else ""
        return (
            f"live: {stats.processed}/{self.slot.offered} frames, {stats.planned_objects} objects, "
            f"{self.dispatcher.sent} commands, {self.late()} late"
        ) + (f"; {running}" if running else "")

    def late(self) -> int:
        """Commands whose fire time passed before they could go out: found so by the planner, or by
        the link after their release."""
        return self.planner.stats.late + self.dispatcher.late_at_link

    def run(self, duration_s: float | None, progress: bool) -> AgentSummary:
        self.watcher.check()  # the live model loads before the cameras start
        workers = [
            supervised("live", self.live.run, self.stop_event, self.restarts),
            supervised("dispatcher", self.dispatcher.run, self.stop_event, self.restarts),
            supervised("model-watcher", self.watcher.run, self.stop_event, self.restarts),
        ]
        watchdog = None
        if self.watchdog_s is not None:
            watchdog = threading.Thread(target=self._ping_watchdog, name="watchdog", daemon=True)
            workers.append(watchdog)
        for worker in workers:
            worker.start()
        if self.panel is not None:
            self.panel.start()
        if self.nightly is not None:
            log.info("nightly training next at %s", self.nightly.start())
        self.notify(f"READY=1\nSTATUS=recording; {self.status_line()}")
        try:
            with logging_redirect_tqdm():  # log lines above the progress line, not glued to it
                recording = self.recorder.run(duration_s, progress=progress, status=self.status_line)
        finally:
            self.stop_event.set()
            if watchdog is not None:  # a ping after STOPPING would tell systemd the agent is still going
                watchdog.join(timeout=10)
            self.notify("STOPPING=1")
            if self.nightly is not None:
                self.nightly.stop()
            if self.panel is not None:
                self.panel.close()
            for worker in workers:
                worker.join(timeout=10)
            self.link.transport.close()  # settles what is in flight: its outcomes go in the log below
            if unsettled := self.dispatcher.unsettled():
                log.error("%d removal commands have no outcome from the link: logged as sent", unsettled)
            self.command_log.close()
        return AgentSummary(recording, self.report(), self.live.stats.first_frame_ns, time.monotonic_ns())

    def _ping_watchdog(self) -> None:
        """Ping systemd's watchdog only while the live path's loop turns: a hung agent (a stuck model,
        a deadlock) stops the pings and systemd restarts it, as it would restart a dead one."""
        seen = self.live.heartbeat_ns
        said_silent = False
        while not self.stop_event.wait(self.watchdog_s):
            beat = self.live.heartbeat_ns
            if beat != seen:
                self.notify(f"WATCHDOG=1\nSTATUS={self.status_line()}")
                said_silent = False
            elif not said_silent:
                log.error("the live path has not turned for %.1f s: no watchdog ping", self.watchdog_s)
                said_silent = True
            seen = beat

    def report(self) -> dict:
        stats = self.live.stats
        plan = _p50_p99(stats.plan_latency_ms)
        masks = _p50_p99(stats.mask_latency_ms)
        return {
            "model": str(self.live.model) if self.live.model else None,
            "frames_captured": self.slot.offered,
            "frames_processed": stats.processed,
            "frames_skipped": self.slot.skipped,
            "frames_warming_up": stats.warming_up,
            "frames_without_model": stats.without_model,
            "frames_not_planned": stats.not_planned,
            "objects_planned": stats.planned_objects,
            "commands_sent": self.dispatcher.sent,
            "dropped_at_stop": self.dispatcher.dropped_at_stop,
            "late": self.late(),
            "late_at_link": self.dispatcher.late_at_link,
            "dropped_at_link": self.dispatcher.dropped_at_link,
            "late_by_ms_max": max(self.planner.stats.late_margins_ms, default=None),
            "belt_speed_mm_s": round(self.live.tracker.speed_mm_s, 1),
            "spared": self.planner.stats.spared,
            "lanes_spared": self.planner.stats.lanes_spared,
            "latency_p50_ms": plan["p50"],
            "latency_p99_ms": plan["p99"],
            "mask_latency_p50_ms": masks["p50"],
            "mask_latency_p99_ms": masks["p99"],
            "live_stage_ms": {stage: _p50_p99(times) for stage, times in stats.stage_ms.items()},
            "tracks": len(self.live.tracker.tracks),
            "model_swaps": stats.swaps,
            "models_refused": list(stats.refused),
            "restarts": dict(self.restarts),
        }
