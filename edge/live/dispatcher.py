"""The dispatcher: every few milliseconds, the planner's due commands go to the actuator link and
into the command log, and the commands found late go into the log as `late` (never sent), those
spared for a legal neighbour as `spared`. A command can also turn late after its release: the link
did not get it onto the wire before its fire time (a starved machine, a slow wire); it is counted
as well (`late_at_link`), so the scoreboard's `late` is every command the log calls late. When the
agent stops, what was already planned is still released for a while (`drain_s`)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, wait

from edge.store.command_log import CommandLog
from firmware_bridge.dry_run import DryRunTransport
from firmware_bridge.link import LinkTransport
from firmware_bridge.messages import CommandOutcome
from firmware_bridge.planner import EjectionPlanner

log = logging.getLogger(__name__)
SETTLE_S = 2.0


class Dispatcher:
    def __init__(
        self,
        planner: EjectionPlanner,
        planner_lock: threading.Lock,
        transport: LinkTransport | DryRunTransport,
        command_log: CommandLog,
        period_s: float,
        drain_s: float = 0.0,
    ) -> None:
        self.planner = planner
        self.planner_lock = planner_lock  # the live path plans on its own thread
        self.transport = transport
        self.command_log = command_log
        self.period_s = period_s
        self.drain_s = drain_s
        self.sent = 0
        self.dropped_at_stop = 0  # planned, but not yet due when the drain time ran out
        self.late_at_link = 0  # released in time, but the link found their fire time passed
        self.dropped_at_link = 0  # sent, but their deadline passed while the link was down (or refused)
        self._count_lock = threading.Lock()  # outcomes resolve on the link's thread, or at its close
        self._unsettled: list[Future] = []  # sent, the link's answer not in yet

    def release(self) -> None:
        """Hand over what is due now; what is late goes on record."""
        with self.planner_lock:
            due, late, spared = self.planner.due(), self.planner.take_late(), self.planner.take_spared()
        for command in due:
            outcome = self.transport.send(command)
            self.command_log.record(command, outcome)
            outcome.add_done_callback(self._count_outcome)
            self._unsettled = [f for f in self._unsettled if not f.done()] + [outcome]
            self.sent += 1
        for command in late:
            self.command_log.record(command, CommandOutcome.LATE)
        for command in spared:
            self.command_log.record(command, CommandOutcome.SPARED)

    def unsettled(self) -> int:
        """Commands sent whose outcome the link has not given: after the link's close there should be
        none (the command log would keep them `sent`), so the agent says so if there are."""
        return sum(not outcome.done() for outcome in self._unsettled)

    def _count_outcome(self, outcome: Future[CommandOutcome]) -> None:
        """The link's verdicts that are faults, counted so the scoreboard's figures are the log's."""
        result = outcome.result()
        with self._count_lock:
            if result == CommandOutcome.LATE:
                self.late_at_link += 1
            elif result == CommandOutcome.DROPPED:
                self.dropped_at_link += 1

    def run(self, stop: threading.Event) -> None:
        """Release until `stop`; then, for up to `drain_s`, keep releasing what was planned, so the
        objects already between C1 and the ejector are still removed after a stop."""
        while not stop.wait(self.period_s):
            self.release()
        deadline = time.monotonic() + self.drain_s
        while True:
            self.release()
            with self.planner_lock:
                left = self.planner.pending
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(self.period_s)
        self.dropped_at_stop = left
        wait(self._unsettled, timeout=SETTLE_S)  # their outcomes belong in the command log before it closes
        if left:
            log.warning("%d planned removal commands not sent: the agent stopped before they were due", left)
