"""The link's timing rules, checked on the link's own (injected) clock with the reference device in
memory: no thread, no sleeping, so a busy CI machine cannot make these pass or fail by accident.
The real wires (tests/test_bridge_links.py) check the same behaviour end to end, without timing."""

from __future__ import annotations

from firmware_bridge.link import LinkError, LinkTransport
from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.serial_protocol import (
    ACK_PAYLOAD,
    NAK_PAYLOAD,
    FrameDecoder,
    MessageType,
    encode_frame,
)
from firmware_bridge.serial_transport import FRAME_ENCODINGS
from firmware_bridge.valve_device import FAILSAFE, ValveDevice

MS = 1_000_000
HEARTBEAT_MS, ACK_TIMEOUT_MS = 100, 30


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now


class InMemoryWire(LinkTransport):
    """The serial protocol to a reference device in this process, every byte delivered at once (a
    link with no delay) unless the test cuts the wire or loses frames."""

    name = "memory"

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(
            "memory", heartbeat_ms=HEARTBEAT_MS, watchdog_ms=500, ack_timeout_ms=ACK_TIMEOUT_MS, clock=clock
        )
        self.device = ValveDevice(channels=8)
        self.cut = False  # frames vanish both ways
        self.lose_next: set[str] = set()  # kinds of frame the wire loses once
        self.break_on: set[str] = set()  # kinds of frame whose next writing finds the wire broken
        self.sent: list[tuple[int, str]] = []  # (clock, kind) of every frame the host wrote
        self._replies = b""
        self._decoder = FrameDecoder()

    def _link_open(self) -> None:
        pass

    def _link_close(self) -> None:
        pass

    def _link_send(self, sequence: int, kind: str, fields: tuple[int, ...]) -> None:
        if kind in self.break_on:
            self.break_on.discard(kind)
            raise LinkError("wire broken")
        self.sent.append((self.clock(), kind))
        if self.cut or kind in self.lose_next:
            self.lose_next.discard(kind)
            return
        message_type, layout = FRAME_ENCODINGS[kind]
        frame = encode_frame(sequence, message_type, layout.pack(*fields) if layout else b"")
        self._replies += self.device.receive(frame, self.clock())

    def _link_poll(self, now: int) -> None:
        self.device.tick(now)
        replies, self._replies = self._replies, b""
        for item in self._decoder.feed(replies, now):
            if item.type == MessageType.ACK:
                self._acknowledged(ACK_PAYLOAD.unpack(item.payload)[0], now)
            elif item.type == MessageType.NAK:
                self._refused(*NAK_PAYLOAD.unpack(item.payload))


STEP_NS = MS // 10  # the worker's turns, 0.1 ms apart on the manual clock


def _run(link: InMemoryWire, clock: ManualClock, ms: float, until=None) -> int | None:
    """Advance the clock for `ms`, one worker turn per step; the clock reading when `until()` first
    holds, if given."""
    end = clock.now + round(ms * MS)
    while clock.now < end:
        link.step()
        if until is not None and until():
            return clock.now
        clock.now += STEP_NS
    return None


def _connected() -> tuple[InMemoryWire, ManualClock]:
    clock = ManualClock()
    link = InMemoryWire(clock)
    assert _run(link, clock, 50, until=lambda: link.status().connected) is not None
    return link, clock


def _fire(object_id: int, fire_ns: int) -> RemovalCommand:
    return RemovalCommand(
        object_id=object_id, sequence=object_id, fire_ns=fire_ns, channels=(2,), pulse_ms=10, capture_ns=0
    )


def test_link_loss_is_declared_within_two_heartbeat_periods_and_commands_wait_for_the_session():
    link, clock = _connected()
    assert [kind for _, kind in link.sent[:2]] == ["heartbeat", "session"]  # nothing else before
    link.cut = True
    cut_at = clock.now
    down_at = _run(link, clock, 1000, until=lambda: not link.status().connected)
    assert down_at is not None and down_at - cut_at <= 2 * HEARTBEAT_MS * MS
    link.cut = False
    back = _run(link, clock, 500, until=lambda: link.status().connected)
    assert back is not None and back - down_at <= 2 * HEARTBEAT_MS * MS
    kinds_after = [kind for at, kind in link.sent if at >= down_at]
    assert "session" in kinds_after  # the session was said again before anything else could go


def test_a_lost_fire_is_sent_again_after_the_ack_timeout_and_opens_once_on_time():
    link, clock = _connected()
    link.lose_next.add("fire")
    command = _fire(7, clock.now + 200 * MS)
    outcome = link.send(command)
    _run(link, clock, 300)
    assert outcome.result(timeout=0) == CommandOutcome.ACKED
    fires = [at for at, kind in link.sent if kind == "fire"]
    assert len(fires) == 2 and fires[1] - fires[0] == ACK_TIMEOUT_MS * MS
    (opening,) = link.device.openings
    # a zero-delay wire: on time to within one worker turn (the round trip the link measures is one
    # turn long, half of which it takes off as the one-way time), and once
    assert abs(opening.open_ns - command.fire_ns) <= STEP_NS


def test_a_fire_whose_time_passes_during_an_outage_is_dropped_never_sent_late():
    link, clock = _connected()
    link.cut = True
    _run(link, clock, 250)  # the link is down now
    doomed = link.send(_fire(8, clock.now + 100 * MS))
    _run(link, clock, 150)
    assert doomed.result(timeout=0) == CommandOutcome.DROPPED
    link.cut = False
    _run(link, clock, 400)
    assert link.device.openings == [] and link.device.state != FAILSAFE


def test_commands_held_through_an_outage_keep_their_outcome_when_the_wire_breaks_again_mid_burst():
    """Commands held while the link was down go out together when it is back; if the wire breaks on
    the first of them, the others are still held, then fired or dropped: never forgotten with no
    outcome (the command log would call them `sent` for ever)."""
    link, clock = _connected()
    link.cut = True
    _run(link, clock, 250)  # the link is down now
    held = [
        link.send(_fire(object_id, clock.now + (300 + 20 * k) * MS))
        for k, object_id in enumerate((11, 12, 13))
    ]
    _run(link, clock, 1)
    link.cut = False
    link.break_on.add("fire")
    _run(link, clock, 400)
    assert all(outcome.done() for outcome in held)
    acked = [outcome.result() == CommandOutcome.ACKED for outcome in held]
    assert sum(acked) == len(link.device.openings) >= 1  # the link came back in time for some


def test_a_resent_command_cut_off_again_is_resent_after_the_next_outage():
    """An acknowledged command is sent again after an outage (the device may have rebooted); a second
    outage before the device acknowledges it again must not make the link forget it."""
    link, clock = _connected()
    outcome = link.send(_fire(21, clock.now + 900 * MS))
    _run(link, clock, 5)
    assert outcome.result(timeout=0) == CommandOutcome.ACKED
    link.device = ValveDevice(channels=8)  # the device rebooted: it lost what it acknowledged
    link.cut = True
    _run(link, clock, 250)
    link.cut = False
    link.break_on.add("fire")  # the wire breaks again on the resending
    _run(link, clock, 1000)
    assert [opening.object_id for opening in link.device.openings] == [21]
