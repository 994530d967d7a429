"""Both transports against their simulators over real stacks: pyserial on a pseudo-terminal, and
pymodbus client and server on loopback TCP. Only the valves are simulated. Timing tolerances are a
few milliseconds: these are threads of one process on a shared machine, not a real-time system."""

from __future__ import annotations

import time

import pytest

from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.modbus_simulator import ModbusValveSimulator, _free_port
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.serial_simulator import SerialValveSimulator
from firmware_bridge.serial_transport import SerialTransport
from firmware_bridge.valve_device import FAILSAFE

MS = 1_000_000
TOLERANCE_NS = 15 * MS  # generous: CI machines are shared; benchmarks/bridge.py measures the real precision
TIMING = {"heartbeat_ms": 50, "watchdog_ms": 200}


def _serial():
    simulator = SerialValveSimulator(channels=16)
    return simulator, SerialTransport(simulator.port, **TIMING)


def _modbus():
    simulator = ModbusValveSimulator(channels=16)
    return simulator, ModbusTcpTransport("127.0.0.1", simulator.port, **TIMING)


@pytest.fixture(params=[_serial, _modbus], ids=["serial", "modbus_tcp"])
def link(request):
    simulator, transport = request.param()
    transport.start()
    assert transport.wait_connected(3.0)
    yield simulator, transport
    transport.close()
    simulator.close()


def _command(object_id: int, fire_in_ms: float, channels=(1,), pulse_ms: float = 10.0) -> RemovalCommand:
    now = time.monotonic_ns()
    return RemovalCommand(
        object_id=object_id, sequence=object_id, fire_ns=now + round(fire_in_ms * MS), channels=channels,
        pulse_ms=pulse_ms, capture_ns=now - 50 * MS,
    )  # fmt: skip


def _openings_by_object(simulator):
    found: dict[int, list] = {}
    for opening in simulator.openings():
        found.setdefault(opening.object_id, []).append(opening)
    return found


def test_commands_fire_on_time_on_their_channels(link):
    simulator, transport = link
    commands = [_command(k, 60 + 15 * k, channels=(k % 16, (k + 3) % 16)) for k in range(10)]
    futures = [transport.send(c) for c in commands]
    assert [f.result(timeout=2) for f in futures] == [CommandOutcome.ACKED] * 10
    time.sleep(0.25)
    fired = _openings_by_object(simulator)
    for command in commands:
        openings = fired[command.object_id]
        assert sorted(o.channel for o in openings) == sorted(command.channels)
        for opening in openings:
            assert abs(opening.open_ns - command.fire_ns) < TOLERANCE_NS
            assert opening.close_ns - opening.open_ns == 10 * MS


def test_a_fire_time_already_past_is_never_sent(link):
    simulator, transport = link
    assert transport.send(_command(1, -5)).result(timeout=1) == CommandOutcome.LATE
    time.sleep(0.05)
    assert simulator.openings() == []


def test_a_command_the_device_refuses_is_dropped(link):
    simulator, transport = link
    refused = transport.send(_command(1, 300, channels=(40,)))  # the bank has 16 channels
    assert refused.result(timeout=2) == CommandOutcome.DROPPED
    assert transport.status().naks >= 3 and simulator.openings() == []


def test_device_restart_mid_stream_loses_nothing_ahead_and_fires_nothing_late(link):
    simulator, transport = link
    commands = [_command(k, 100 + 25 * k, channels=(k % 16,), pulse_ms=5) for k in range(60)]
    futures = [transport.send(c) for c in commands]
    time.sleep(0.3)
    outage_start = time.monotonic_ns()
    simulator.restart(0.25)  # power lost: what the device had scheduled is gone with it
    outage_end = time.monotonic_ns()
    assert transport.wait_connected(3.0)
    reconnected = time.monotonic_ns()
    # the back-off's waits (50, 100, 200, 400 ms ... plus a tenth of jitter) bound how long after the
    # device's return the link comes back; what fires after that must all be there
    assert reconnected - outage_end < 600 * MS
    time.sleep(1.2)
    outcomes = [f.result(timeout=2) for f in futures]
    fired = _openings_by_object(simulator)
    for command, outcome in zip(commands, outcomes, strict=True):
        openings = fired.get(command.object_id, [])
        assert len(openings) <= 1, f"command {command.object_id} fired twice"
        for opening in openings:
            assert opening.open_ns < command.fire_ns + TOLERANCE_NS, f"command {command.object_id} fired late"
        if command.fire_ns > reconnected + 100 * MS:  # ahead of the recovery: must not be lost
            assert len(openings) == 1, f"command {command.object_id} lost"
        if outage_start + 10 * MS < command.fire_ns < outage_end:
            assert openings == [] or openings[0].open_ns < outage_start  # nothing fires in the dark
            assert outcome in (CommandOutcome.ACKED, CommandOutcome.DROPPED)
    assert transport.status().unconfirmed >= 1  # acknowledged, then their moment fell in the outage


def test_link_loss_is_detected_and_late_commands_dropped(link):
    simulator, transport = link
    simulator.power_off()
    started = time.monotonic()
    while transport.status().connected and time.monotonic() - started < 1.0:
        time.sleep(0.002)
    # noticed (how fast, in heartbeat periods, is checked on the link's own clock in test_bridge_timing)
    assert not transport.status().connected and time.monotonic() - started < 1.0
    assert transport.status().alarm is not None
    doomed = transport.send(_command(1, 80))
    assert doomed.result(timeout=1) == CommandOutcome.DROPPED
    simulator.power_on()
    assert transport.wait_connected(3.0) and transport.status().alarm is None
    time.sleep(0.1)
    assert simulator.openings() == []


def test_test_fire_opens_one_valve_now(link):
    simulator, transport = link
    before = time.monotonic_ns()
    assert transport.test_fire(channel=7, pulse_ms=30).result(timeout=1) == CommandOutcome.ACKED
    (opening,) = simulator.openings()
    assert opening.channel == 7 and opening.close_ns - opening.open_ns == 30 * MS
    assert 0 <= opening.open_ns - before < 20 * MS


@pytest.mark.parametrize("make", [
    lambda tmp_path: SerialTransport(str(tmp_path / "ttyUSB9"), **TIMING),
    lambda tmp_path: ModbusTcpTransport("127.0.0.1", _free_port(), **TIMING),
], ids=["serial", "modbus_tcp"])  # fmt: skip
def test_no_device_raises_an_alarm_and_drops_at_the_deadline(tmp_path, make):
    transport = make(tmp_path)
    transport.start()
    try:
        future = transport.send(_command(1, 50))
        assert future.result(timeout=1) == CommandOutcome.DROPPED
        assert "cannot open" in transport.status().alarm and not transport.status().connected
    finally:
        transport.close()


def test_a_host_that_dies_leaves_no_valve_open_and_nothing_to_fire(link):
    """The device's own watchdog, over the real wire: when the host stops heartbeating (killed, no
    CLOSE_ALL), the open valve closes and what was scheduled is cancelled, within the watchdog time."""
    simulator, transport = link
    assert transport.test_fire(channel=2, pulse_ms=1500).result(timeout=1) == CommandOutcome.ACKED
    assert transport.send(_command(1, 700, channels=(3,))).result(timeout=1) == CommandOutcome.ACKED
    died = time.monotonic_ns()
    transport._stop.set()  # the host process dies: no more heartbeats, no goodbye
    transport._thread.join(timeout=2)
    transport._link_close()
    transport._open_now = False
    time.sleep(1.0)
    assert simulator.device.state == FAILSAFE
    openings = simulator.openings()
    (held_open,) = [o for o in openings if o.channel == 2]
    assert held_open.close_ns - died < (TIMING["watchdog_ms"] + 100) * MS  # not its 1.5 s
    assert all(o.object_id != 1 for o in openings)  # the scheduled opening never happened


def test_every_command_has_an_outcome_once_the_link_is_closed(link):
    """The agent writes each command's outcome to its log after the link closes: a command still held
    at the close, or sent to a closed link (a dispatcher finishing its drain late), must be settled,
    never left `sent` for ever."""
    simulator, transport = link
    ahead = transport.send(_command(1, 5_000))  # due long after the close's drain: cancelled by it
    transport.close()
    after = transport.send(_command(2, 50))
    test_fire = transport.test_fire(3, 10.0)
    assert ahead.result(timeout=1) in (CommandOutcome.ACKED, CommandOutcome.DROPPED)
    assert after.result(timeout=0) == CommandOutcome.DROPPED
    assert test_fire.result(timeout=0) == CommandOutcome.DROPPED
    assert not any(opening.object_id == 2 for opening in simulator.openings())
