"""A transport that opens no valve: every command is logged and answered `DRY_RUN`. For commissioning
a new belt, where the agent must run for real except for the air."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

from firmware_bridge.messages import CommandOutcome, LinkStatus, RemovalCommand

log = logging.getLogger(__name__)


class DryRunTransport:
    name = "dry_run"

    def __init__(self) -> None:
        self.would_fire: list[RemovalCommand] = []
        self._status = LinkStatus(transport=self.name, connected=True)

    def start(self) -> None:
        log.info("dry run: no valve will open")

    def close(self) -> None:
        pass

    def wait_connected(self, timeout_s: float) -> bool:
        return True

    def status(self) -> LinkStatus:
        return self._status

    def send(self, command: RemovalCommand) -> Future[CommandOutcome]:
        ahead_ms = (command.fire_ns - time.monotonic_ns()) / 1e6
        outcome = CommandOutcome.DRY_RUN if ahead_ms > 0 else CommandOutcome.LATE
        log.info(
            "dry run: would open channels %s for %.1f ms in %.1f ms (object %d): %s",
            list(command.channels), command.pulse_ms, ahead_ms, command.object_id, outcome.value,
        )  # fmt: skip
        if outcome == CommandOutcome.DRY_RUN:
            self.would_fire.append(command)
        self._status = self._status.model_copy(update={"sent": self._status.sent + 1})
        future: Future[CommandOutcome] = Future()
        future.set_result(outcome)
        return future

    def test_fire(self, channel: int, pulse_ms: float) -> Future[CommandOutcome]:
        log.info("dry run: would open channel %d for %.1f ms now", channel, pulse_ms)
        future: Future[CommandOutcome] = Future()
        future.set_result(CommandOutcome.DRY_RUN)
        return future
