"""Link sessions (PROTOCOL.md version 2) and the timing rules a removal command lives by: a restarted
host is never mistaken for the previous one, SEQs wrap without colliding, a test fire has a deadline,
the link's one-way time is taken off every delay, and a clean shutdown closes every valve."""

from __future__ import annotations

import threading
import time

import pytest
import serial

from firmware_bridge import link as link_module
from firmware_bridge.link import LinkTransport
from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.serial_protocol import FIRE_PAYLOAD, FrameDecoder, MessageType, NakReason, encode_frame
from firmware_bridge.serial_simulator import SerialValveSimulator
from firmware_bridge.serial_transport import SerialTransport
from firmware_bridge.valve_device import REMEMBER_AFTER_END_NS, ValveDevice

MS = 1_000_000
TIMING = {"heartbeat_ms": 50, "watchdog_ms": 200}
WIRES = {
    "serial": (SerialValveSimulator, lambda sim, **kw: SerialTransport(sim.port, **TIMING, **kw)),
    "modbus_tcp": (
        ModbusValveSimulator,
        lambda sim, **kw: ModbusTcpTransport("127.0.0.1", sim.port, **TIMING, **kw),
    ),
}


@pytest.fixture(params=sorted(WIRES))
def wire(request):
    make_simulator, make_transport = WIRES[request.param]
    simulator = make_simulator(channels=16)
    yield simulator, lambda **kw: make_transport(simulator, **kw)
    simulator.close()


def _command(object_id: int, fire_in_ms: float, channel: int = 1, pulse_ms: float = 10.0) -> RemovalCommand:
    now = time.monotonic_ns()
    return RemovalCommand(
        object_id=object_id, sequence=object_id, fire_ns=now + round(fire_in_ms * MS), channels=(channel,),
        pulse_ms=pulse_ms, capture_ns=now,
    )  # fmt: skip


def test_each_host_restart_is_a_new_session_whose_commands_fire(wire, monkeypatch):
    simulator, make_transport = wire
    # every host start picks the same first SEQ here, as every v1 host did: only the session tells
    # the device that a second host's SEQ 42 is not the first host's SEQ 42
    monkeypatch.setattr(link_module.secrets, "randbelow", lambda _: 41)
    for channel in (3, 4, 5):
        transport = make_transport()
        fired = transport.test_fire(channel, pulse_ms=20)  # queued before start: SEQ 42 every time
        transport.start()
        try:
            assert fired.result(timeout=3) == CommandOutcome.ACKED
        finally:
            transport.close()
    assert sorted(opening.channel for opening in simulator.openings()) == [3, 4, 5]


def test_sequence_numbers_wrap_past_zero_and_never_use_the_nak_marker():
    transport = LinkTransport("nowhere")
    transport._sequence = 0xFFFD
    assert [transport._next_sequence() for _ in range(3)] == [0xFFFE, 1, 2]  # 0xFFFF: NAK's "never arrived"


def _fire_frame(sequence: int, delay_us: int = 0) -> bytes:
    return encode_frame(sequence, MessageType.FIRE, FIRE_PAYLOAD.pack(9, delay_us, 5_000, 0b10))


def _acted(device: ValveDevice, frame: bytes, now_ns: int) -> bool:
    before = len(device.acted)
    (reply,) = FrameDecoder().feed(device.receive(frame, now_ns), now_ns)
    assert reply.type == MessageType.ACK
    return len(device.acted) > before


def test_the_device_forgets_a_seq_once_its_opening_is_long_over():
    device = ValveDevice(channels=4)
    heartbeat = encode_frame(1, MessageType.HEARTBEAT, bytes.fromhex("01000000f401"))
    device.receive(heartbeat, 0)
    assert _acted(device, _fire_frame(7), 1 * MS)
    assert not _acted(device, _fire_frame(7), 2 * MS)  # a retransmission: acknowledged, not acted on
    later = 1 * MS + 5 * MS + REMEMBER_AFTER_END_NS + 1
    device.receive(heartbeat, later - 1)  # keep the watchdog fed
    assert _acted(device, _fire_frame(7), later)  # SEQ 7 again after a wrap: a new command


def test_a_new_session_makes_the_device_forget_the_previous_hosts_seqs():
    device = ValveDevice(channels=4)
    device.receive(encode_frame(1, MessageType.HEARTBEAT, bytes.fromhex("01000000f401")), 0)
    session = lambda sid: encode_frame(2, MessageType.SESSION, sid.to_bytes(4, "little"))  # noqa: E731
    device.receive(session(111), 0)
    assert _acted(device, _fire_frame(7, delay_us=500_000), 1 * MS)
    device.receive(session(111), 2 * MS)  # the same host again (a link glitch): memory kept
    assert not _acted(device, _fire_frame(7, delay_us=500_000), 3 * MS)
    device.receive(session(222), 4 * MS)  # another host
    assert _acted(device, _fire_frame(7, delay_us=500_000), 5 * MS)


def test_a_test_fire_during_an_outage_is_dropped_at_its_deadline_never_fired_later(wire):
    simulator, make_transport = wire
    transport = make_transport(test_fire_deadline_ms=300)
    transport.start()
    try:
        assert transport.wait_connected(3.0)
        simulator.power_off()
        deadline = time.monotonic() + 1.0
        while transport.status().connected and time.monotonic() < deadline:
            time.sleep(0.005)
        fired = transport.test_fire(6, pulse_ms=20)
        assert fired.result(timeout=1.0) == CommandOutcome.DROPPED
        simulator.power_on()
        assert transport.wait_connected(3.0)
        time.sleep(0.3)
    finally:
        transport.close()
    assert simulator.openings() == []


def test_a_clean_close_lets_imminent_openings_happen_and_cancels_the_rest(wire):
    simulator, make_transport = wire
    transport = make_transport(close_drain_s=0.5)
    transport.start()
    assert transport.wait_connected(3.0)
    soon, far = _command(1, 150, channel=1), _command(2, 3000, channel=2)
    assert transport.send(soon).result(timeout=1) == CommandOutcome.ACKED
    assert transport.send(far).result(timeout=1) == CommandOutcome.ACKED
    transport.close()
    openings = simulator.openings()
    assert [o.object_id for o in openings] == [1]  # the far one was cancelled by CLOSE_ALL
    assert openings[0].close_ns - openings[0].open_ns == 10 * MS  # and the near one ran its full pulse
    assert simulator.device.state == 0  # CLOSE_ALL, not a watchdog trip


def test_the_serial_port_is_opened_exclusively():
    with SerialValveSimulator(channels=4) as simulator:
        first = SerialTransport(simulator.port, **TIMING)
        first.start()
        try:
            assert first.wait_connected(3.0)
            with pytest.raises(serial.SerialException):
                serial.serial_for_url(simulator.port, exclusive=True)
            second = SerialTransport(simulator.port, **TIMING)
            second.start()
            try:
                assert not second.wait_connected(0.3)
                assert "cannot open" in second.status().alarm
            finally:
                second.close()
        finally:
            first.close()


class _SlowWire(LinkTransport):
    """A wire with a fixed one-way time: every frame reaches an ideal device `one_way_ns` after it
    was written, and its acknowledgement comes back as late again. Records what the device would do."""

    name = "slow"

    def __init__(self, one_way_ms: float, **timing: float) -> None:
        super().__init__("slow wire", **timing)
        self.one_way_ns = round(one_way_ms * MS)
        self.fires: list[tuple[int, int]] = []  # (object id, when the device opens the valve)
        self._replies: list[tuple[int, int]] = []  # (when the ACK arrives, SEQ)
        self._lock = threading.Lock()

    def _link_open(self) -> None:
        pass

    def _link_close(self) -> None:
        pass

    def _link_poll(self, now: int) -> None:
        with self._lock:
            due = [r for r in self._replies if r[0] <= now]
            self._replies = [r for r in self._replies if r[0] > now]
        for _, sequence in due:
            self._acknowledged(sequence, now)

    def _link_send(self, sequence: int, kind: str, fields: tuple[int, ...]) -> None:
        sent = self.clock()
        arrives = sent + self.one_way_ns
        if kind == "fire":
            object_id, delay_us, _, _ = fields
            self.fires.append((object_id, arrives + delay_us * 1000))
        with self._lock:
            self._replies.append((arrives + self.one_way_ns, sequence))


def test_the_measured_one_way_time_is_taken_off_every_delay():
    transport = _SlowWire(one_way_ms=30, heartbeat_ms=100, watchdog_ms=500, ack_timeout_ms=150)
    transport.start()
    try:
        assert transport.wait_connected(2.0)
        time.sleep(0.3)  # a few heartbeats: the estimate settles
        assert transport.status().one_way_ms == pytest.approx(30, abs=5)
        on_time = _command(1, 200)
        assert transport.send(on_time).result(timeout=1) == CommandOutcome.ACKED
        too_close = _command(2, 10)  # closer than the link's one-way time: it could only be late
        assert transport.send(too_close).result(timeout=1) == CommandOutcome.LATE
    finally:
        transport.close()
    ((object_id, opens_ns),) = transport.fires
    assert object_id == 1
    assert abs(opens_ns - on_time.fire_ns) < 5 * MS  # without the correction: 30 ms late


def test_a_locked_database_never_delays_the_link(tmp_path):
    """The command log writes off the link's thread: while another process holds the index locked,
    heartbeats go on, the device stays out of fail-safe, commands fire, and the log catches up."""
    import sqlite3

    from sqlalchemy import select

    from edge.store.command_log import CommandLog
    from edge.store.frame_store import FrameStore
    from edge.store.models import RemovalCommand as RemovalCommandRow

    store = FrameStore(tmp_path / "store", f"sqlite:///{tmp_path / 'store' / 'index.db'}")
    log = CommandLog(store)
    with SerialValveSimulator(channels=16) as simulator:
        transport = SerialTransport(simulator.port, **TIMING)
        transport.start()
        assert transport.wait_connected(3.0)
        locker = sqlite3.connect(tmp_path / "store" / "index.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holding the index
        try:
            commands = [_command(k, 100 + 60 * k, channel=k) for k in range(8)]
            started = time.monotonic()
            for command in commands:
                log.record(command, transport.send(command))
            assert time.monotonic() - started < 0.1  # logging never waited for the database
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:  # a link waiting for the database misses the 200 ms watchdog
                assert simulator.device.state == 0
                time.sleep(0.01)
            assert transport.wait_connected(1.0)  # one late heartbeat on a loaded machine is not the database
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        transport.close()
        fired = {opening.object_id for opening in simulator.openings()}
    log.close()
    with store.session() as session:
        statuses = session.scalars(select(RemovalCommandRow.status)).all()
    store.close()
    assert fired == set(range(8))
    assert sorted(statuses) == ["acked"] * 8


class _Version1Device(ValveDevice):
    """Firmware written to PROTOCOL.md version 1: it does not know SESSION."""

    def _answer(self, item, now_ns):
        if getattr(item, "type", None) == MessageType.SESSION:
            return self._nak(item.sequence, NakReason.UNKNOWN_TYPE)
        return super()._answer(item, now_ns)


def test_a_version_1_device_is_named_and_never_sent_a_command():
    with SerialValveSimulator(channels=4) as simulator:
        simulator.device = _Version1Device(4)
        transport = SerialTransport(simulator.port, **TIMING)
        transport.start()
        try:
            fired = transport.test_fire(1, pulse_ms=20)
            assert fired.result(timeout=2) == CommandOutcome.DROPPED
            status = transport.status()
            assert not status.connected and "version 2" in status.alarm
        finally:
            transport.close()
        assert simulator.openings() == []
