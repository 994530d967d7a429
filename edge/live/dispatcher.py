"""The dispatcher: every few milliseconds, the planner's due commands go to the actuator link and
into the command log, and the commands found late go into the log as `late` (never sent)."""

from __future__ import annotations

import threading

from edge.store.command_log import CommandLog
from firmware_bridge.dry_run import DryRunTransport
from firmware_bridge.link import LinkTransport
from firmware_bridge.messages import CommandOutcome
from firmware_bridge.planner import EjectionPlanner


class Dispatcher:
    def __init__(
        self,
        planner: EjectionPlanner,
        planner_lock: threading.Lock,
        transport: LinkTransport | DryRunTransport,
        command_log: CommandLog,
        period_s: float,
    ) -> None:
        self.planner = planner
        self.planner_lock = planner_lock  # the live path plans on its own thread
        self.transport = transport
        self.command_log = command_log
        self.period_s = period_s
        self.sent = 0

    def release(self) -> None:
        """Hand over what is due now; what is late goes on record."""
        with self.planner_lock:
            due, late = self.planner.due(), self.planner.take_late()
        for command in due:
            self.command_log.record(command, self.transport.send(command))
            self.sent += 1
        for command in late:
            self.command_log.record(command, CommandOutcome.LATE)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.period_s):
            self.release()
        self.release()  # what fell due while stopping still goes: the link drains it before closing
