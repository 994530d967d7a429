"""Opening one valve by hand (commissioning, the panel's test-fire), checked against the calibrated
nozzle bank and logged in `removal_commands` like every command: whatever opened a valve on a belt
is on record, with who asked for it."""

from __future__ import annotations

import math
import time
from concurrent.futures import Future

from edge.store.command_log import CommandLog
from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.planner import NozzleBank
from firmware_bridge.valve_device import MAX_PULSE_US


def test_fire_problem(bank: NozzleBank, channel: int, pulse_ms: float) -> str | None:
    """Why this test fire must not be sent (None when it may)."""
    if not math.isfinite(pulse_ms):
        return f"a pulse of {pulse_ms} ms is not a number of milliseconds"
    if not 0 <= channel < bank.nozzle_count:
        return (
            f"channel {channel} is not on the bank ({bank.nozzle_count} nozzles: 0..{bank.nozzle_count - 1})"
        )
    if pulse_ms < bank.min_pulse_ms:
        return (
            f"a pulse of {pulse_ms:g} ms is shorter than the valves open ({bank.min_pulse_ms:g} ms: "
            "actuators.min_pulse_ms in the calibration file)"
        )
    if pulse_ms > MAX_PULSE_US / 1000:
        return f"a pulse of {pulse_ms:g} ms is longer than the device accepts ({MAX_PULSE_US // 1000} ms)"
    return None


def logged_test_fire(
    transport, log: CommandLog, channel: int, pulse_ms: float, by: str
) -> Future[CommandOutcome]:
    """Open `channel` now; logged as object 0 with detail `{"kind": "test_fire", "by": by}`."""
    now = time.monotonic_ns()
    command = RemovalCommand(
        object_id=0, sequence=0, fire_ns=now, channels=(channel,), pulse_ms=pulse_ms, capture_ns=now
    )
    future = transport.test_fire(channel, pulse_ms)
    log.record(command, future, detail={"kind": "test_fire", "by": by})
    return future
