"""What every transport to an actuator does, whatever the wire: commands out with acknowledgement,
retransmission and deadlines; heartbeats; a link-loss alarm; reconnection with back-off; and after
an outage, the acknowledged commands still ahead sent again under their original sequence numbers
(the device ignores those it still has; see PROTOCOL.md).

Each start of a transport is a new link session (PROTOCOL.md version 2): a random session id, sent
before any command whenever the link comes up, makes the device forget the SEQs of a previous host,
so a restarted host's commands are never mistaken for old ones; SEQs start at a random value and
skip 0. The link's one-way time is measured from the round trips of heartbeats and session frames
and taken off every command's delay; a command that cannot reach the device before its fire time is
`LATE` or `DROPPED`, never sent. A clean `close` lets openings already due within `close_drain_s`
happen, then sends `CLOSE_ALL`.

One worker thread owns the link. Callers hand it commands and get futures that resolve once:
`ACKED`, or `DROPPED` when the deadline passed first (never fired late), or `LATE` when the fire
time had already passed on arrival. Subclasses only open the link and put frames on it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from firmware_bridge.messages import CommandOutcome, LinkStatus, RemovalCommand

log = logging.getLogger(__name__)
REMEMBERED_BY_DEVICE = 64
LAST_SEQUENCE = 0xFFFE  # SEQs run 1..65534
UNKNOWN_TYPE = 3  # the refusal of a message type the device does not know (PROTOCOL.md)
ONE_WAY_GAIN = 0.125
RECONNECT_JITTER = 0.1  # weight of a new round-trip sample in the one-way estimate (as TCP's SRTT)


class LinkError(OSError):
    """The link broke (port gone, connection reset, timeout): reconnect."""


@dataclass
class _Outgoing:
    sequence: int
    command: RemovalCommand | None  # a FIRE; None for a test fire
    test_fire: tuple[int, int] | None  # channel, pulse in microseconds
    deadline_ns: int  # the last moment it may still reach the device
    future: Future[CommandOutcome] = field(default_factory=Future)
    tries: int = 0
    refusals: int = 0
    sent_ns: int = 0
    acked: bool = False


class LinkTransport:
    """The shared machinery; subclasses implement the four `_link_*` methods."""

    name = "link"

    def __init__(
        self,
        where: str,
        heartbeat_ms: float = 100.0,
        watchdog_ms: int = 500,
        ack_timeout_ms: float = 30.0,
        max_tries: int = 3,
        reconnect_max_s: float = 2.0,
        test_fire_deadline_ms: float = 1000.0,
        close_drain_s: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.where = where
        self.heartbeat_ns = round(heartbeat_ms * 1e6)
        self.watchdog_ms = watchdog_ms
        self.ack_timeout_ns = round(ack_timeout_ms * 1e6)
        self.max_tries = max_tries
        self.reconnect_max_s = reconnect_max_s
        self.test_fire_deadline_ns = round(test_fire_deadline_ms * 1e6)
        self.close_drain_ns = round(close_drain_s * 1e9)
        self.clock = clock
        self.session_id = secrets.randbits(32) or 1
        self._open_now = False
        self._incoming: queue.Queue[_Outgoing] = queue.Queue()
        self._waiting: list[_Outgoing] = []  # link down: held until it is up or their deadline passes
        self._in_flight: dict[int, _Outgoing] = {}
        self._unfired: dict[int, _Outgoing] = {}  # acknowledged FIREs still ahead: resent after an outage
        self._sequence = secrets.randbelow(LAST_SEQUENCE) + 1
        self._heartbeat_counter = 0
        self._last_heartbeat_sent = 0
        self._heartbeat_pending: int | None = None
        self._session_pending: int | None = None
        self._session_sent = 0
        self._session_acked = False
        self._heartbeat_answered = False
        self._close_pending: int | None = None
        self._one_way_ns: float | None = None
        self._last_opening_end_ns = 0  # when the last opening the device acknowledged ends
        self._closing_at: int | None = None
        self._status = LinkStatus(transport=self.name, connected=False, alarm="not started")
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False  # set with `_accepting`: a command sent after it is dropped at once
        self._accepting = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reconnect_at = 0
        self._reconnect_delay_s = 0.05

    # --- what a wire must provide ---------------------------------------------------------------
    def _link_open(self) -> None:
        """Connect; raise LinkError when it cannot."""
        raise NotImplementedError

    def _link_close(self) -> None:
        raise NotImplementedError

    def _link_poll(self, now: int) -> None:
        """Read what the device said and report it through `_acknowledged` / `_refused`."""
        raise NotImplementedError

    def _link_send(self, sequence: int, kind: str, fields: tuple[int, ...]) -> None:
        """Put one message on the wire: kind is fire (object_id, delay_us, pulse_us, channel_mask),
        test_fire (channel, pulse_us), heartbeat (counter, watchdog_ms), session (session_id,) or
        close_all ()."""
        raise NotImplementedError

    # --- public ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name} {self.where}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Let the openings due within `close_drain_s` happen, close every valve (`CLOSE_ALL`) and
        stop: a stopped agent leaves nothing firing behind it."""
        if self._thread is not None and self._thread.is_alive():
            self._closing_at = self.clock()
            self._thread.join(timeout=self.close_drain_ns / 1e9 + 2)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._open_now:
            self._link_close()
            self._open_now = False
        with self._accepting:
            self._closed = True
        if self._thread is None or not self._thread.is_alive():
            self._drop_unsettled()

    def _drop_unsettled(self) -> None:
        """Every command the closed link still holds is dropped, so that each sender's future, and
        the command log behind it, gets an outcome: one sent while the worker was closing, or left
        when the worker ran out of drain time before `CLOSE_ALL`."""
        self._collect_incoming()
        for outgoing in [*self._waiting, *self._in_flight.values()]:
            self._finish(outgoing, CommandOutcome.DROPPED)
        self._waiting, self._in_flight = [], {}

    def _accept(self, outgoing: _Outgoing) -> Future[CommandOutcome]:
        with self._accepting:
            if not self._closed:
                self._incoming.put(outgoing)
                return outgoing.future
        self._finish(outgoing, CommandOutcome.DROPPED)  # the link is closed: it will never go out
        return outgoing.future

    def send(self, command: RemovalCommand) -> Future[CommandOutcome]:
        return self._accept(_Outgoing(self._next_sequence(), command, None, deadline_ns=command.fire_ns))

    def test_fire(self, channel: int, pulse_ms: float) -> Future[CommandOutcome]:
        """Open one valve now; a test fire that cannot reach the device within
        `test_fire_deadline_ms` (the link is down) is dropped, never fired later."""
        deadline = self.clock() + self.test_fire_deadline_ns
        fire = (channel, round(pulse_ms * 1000))
        return self._accept(_Outgoing(self._next_sequence(), None, fire, deadline))

    def status(self) -> LinkStatus:
        with self._status_lock:
            return self._status

    def wait_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.status().connected:
                return True
            time.sleep(0.005)
        return False

    # --- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            pause_s = self.step()
            if pause_s is None:
                return
            time.sleep(pause_s)

    def step(self) -> float | None:
        """One turn of the worker at `clock()`: what the thread does over and over. Returns how long
        to pause before the next turn, or None once the link is closed. Tests with a manual clock call
        it directly, so timing logic is checked on the link's own clock, not on a busy machine's."""
        now = self.clock()
        self._collect_incoming()
        if self._closing_at is not None and self._drained(now):
            self._close_all()
            return None
        if not self._open_now and not self._open(now):
            self._expire_waiting(now)
            return 0.01
        try:
            self._link_poll(now)
            self._heartbeat(now)
            self._handshake(now)
            self._retransmit(now)
            self._dispatch(now)
            self._forget_fired(now)
        except LinkError as error:
            self._link_lost(f"{self.name} link {self.where}: {error}")
        return 0.0005

    def _drained(self, now: int) -> bool:
        """Closing: nothing left in flight and every acknowledged opening over, or time is up."""
        if now - self._closing_at >= self.close_drain_ns or not self._open_now:
            return True
        return not self._in_flight and now >= self._last_opening_end_ns

    def _close_all(self) -> None:
        """Close every valve and cancel what is still scheduled, waiting a few acknowledgement
        timeouts for the device to confirm; whatever is still queued is dropped."""
        self._drop_unsettled()
        if not (self._open_now and self.status().connected):
            return
        sequence = self._next_sequence()
        self._close_pending = sequence
        give_up = self.clock() + self.max_tries * self.ack_timeout_ns
        try:
            self._link_send(sequence, "close_all", ())
            while self._close_pending == sequence and self.clock() < give_up:
                time.sleep(0.0005)
                self._link_poll(self.clock())
        except LinkError as error:
            log.warning("%s link %s: CLOSE_ALL not confirmed: %s", self.name, self.where, error)

    def _open(self, now: int) -> bool:
        if now < self._reconnect_at:
            return False
        try:
            self._link_open()
        except LinkError as error:
            self._update(connected=False, alarm=f"cannot open {self.where}: {error}")
            # jitter (up to a tenth of the wait): hosts that lost one PLC together do not all come back
            # in the same millisecond, and a lone host's reconnection is hardly delayed
            jitter_s = secrets.randbelow(1000) / 1000 * RECONNECT_JITTER * self._reconnect_delay_s
            self._reconnect_at = now + round((self._reconnect_delay_s + jitter_s) * 1e9)
            self._reconnect_delay_s = min(self._reconnect_delay_s * 2, self.reconnect_max_s)
            return False
        self._open_now = True
        self._reconnect_delay_s = 0.05
        log.info("%s link %s open", self.name, self.where)
        return True

    def _link_lost(self, reason: str) -> None:
        log.warning("%s; reconnecting", reason)
        self._link_close()
        self._open_now = False
        self._update(connected=False, alarm=reason)
        for sequence, outgoing in self._in_flight.items():
            if outgoing.acked:  # acknowledged once, resent after an outage: resent after this one too
                self._unfired[sequence] = outgoing
            else:
                self._waiting.append(outgoing)
        self._in_flight.clear()
        self._heartbeat_pending = None
        self._heartbeat_answered = False
        self._session_pending = None
        self._session_acked = False

    def _refused(self, sequence: int, reason: int) -> None:
        """The device refused a frame. Sent again on the usual timer (a device in fail-safe accepts
        it after the next heartbeat); refused every time, it is dropped."""
        self._bump(naks=1)
        log.warning("device at %s refused frame %d (reason %d)", self.where, sequence, reason)
        if sequence == self._session_pending and reason == UNKNOWN_TYPE:
            self._update(
                alarm=f"device at {self.where} does not know link sessions (PROTOCOL.md version 2): "
                "update its firmware; no command is sent to it"
            )
            return
        outgoing = self._in_flight.get(sequence)
        if outgoing is None:
            return
        outgoing.refusals += 1
        if outgoing.refusals >= self.max_tries:
            del self._in_flight[sequence]
            self._finish(outgoing, CommandOutcome.DROPPED)

    def _acknowledged(self, sequence: int, now: int) -> None:
        if sequence == self._close_pending:
            self._close_pending = None
            return
        if sequence == self._session_pending:
            self._session_pending = None
            self._session_acked = True
            self._measured_round_trip(now - self._session_sent)
            self._maybe_up(now)
            return
        if sequence == self._heartbeat_pending:
            self._heartbeat_pending = None
            self._heartbeat_answered = True
            self._measured_round_trip(now - self._last_heartbeat_sent)
            self._update(last_heartbeat_ack_ns=now)
            self._maybe_up(now)
            return
        outgoing = self._in_flight.pop(sequence, None)
        if outgoing is None:
            return
        if not outgoing.future.done():
            self._bump(acked=1)
            outgoing.future.set_result(CommandOutcome.ACKED)
        if outgoing.command is not None:
            outgoing.acked = True
            self._unfired[sequence] = outgoing
            self._last_opening_end_ns = max(self._last_opening_end_ns, outgoing.command.end_ns)
        else:
            pulse_ns = outgoing.test_fire[1] * 1000
            self._last_opening_end_ns = max(self._last_opening_end_ns, now + pulse_ns)

    def _maybe_up(self, now: int) -> None:
        """The link is up, for commands, once the device answers heartbeats and knows our session;
        coming back up after an outage, what it may have lost is sent again."""
        if self._heartbeat_answered and self._session_acked and not self.status().connected:
            self._update(connected=True, alarm=None)
            self._resend_unfired(now)

    def _measured_round_trip(self, round_trip_ns: int) -> None:
        """A heartbeat's or session frame's round trip: half of it is the one-way time a command
        spends before the device starts counting its delay."""
        sample = round_trip_ns / 2
        previous = self._one_way_ns
        self._one_way_ns = sample if previous is None else previous + ONE_WAY_GAIN * (sample - previous)
        self._update(one_way_ms=self._one_way_ns / 1e6)

    def _heartbeat(self, now: int) -> None:
        if self._heartbeat_pending is not None and now - self._last_heartbeat_sent >= self.heartbeat_ns:
            self._heartbeat_pending = None
            if self.status().connected:
                log.warning("%s link %s: heartbeat unanswered", self.name, self.where)
            self._update(connected=False, alarm=f"device at {self.where} does not answer heartbeats")
            self._heartbeat_answered = False
            self._session_acked = False  # the device may reboot: say who we are again when it is back
        if now - self._last_heartbeat_sent >= self.heartbeat_ns:
            self._heartbeat_counter += 1
            sequence = self._next_sequence()
            self._heartbeat_pending = sequence
            self._last_heartbeat_sent = self.clock()
            self._link_send(sequence, "heartbeat", (self._heartbeat_counter & 0xFFFFFFFF, self.watchdog_ms))

    def _handshake(self, now: int) -> None:
        """Until the device has acknowledged this host's session, say it (again every heartbeat
        period): no command goes out before, so none can be taken for a previous host's."""
        if self._session_acked:
            return
        if self._session_pending is not None and now - self._session_sent < self.heartbeat_ns:
            return
        sequence = self._next_sequence()
        self._session_pending = sequence
        self._session_sent = self.clock()
        self._link_send(sequence, "session", (self.session_id,))

    def _collect_incoming(self) -> None:
        while True:
            try:
                self._waiting.append(self._incoming.get_nowait())
            except queue.Empty:
                return

    def _dispatch(self, now: int) -> None:
        if not self.status().connected:
            self._expire_waiting(now)
            return
        while self._waiting:  # one at a time: when the wire breaks mid-way, the rest stay held
            self._transmit(self._waiting.pop(0), now)

    def _transmit(self, outgoing: _Outgoing, now: int) -> None:
        now = self.clock()  # not the loop's reading: earlier requests on a slow wire may have taken a while
        arrives = now + round(self._one_way_ns or 0)
        if arrives >= outgoing.deadline_ns:  # it would reach the device too late: never sent
            self._finish(outgoing, CommandOutcome.LATE if outgoing.tries == 0 else CommandOutcome.DROPPED)
            return
        if outgoing.command is not None:
            delay_ns = outgoing.command.fire_ns - arrives
            command = outgoing.command
            mask = sum(1 << channel for channel in command.channels)
            kind, fields = "fire", (command.object_id, delay_ns // 1000, round(command.pulse_ms * 1000), mask)
        else:
            kind, fields = "test_fire", outgoing.test_fire
        self._bump(**({"retransmits": 1} if outgoing.tries else {"sent": 1}))
        outgoing.tries += 1
        outgoing.sent_ns = now
        self._in_flight[outgoing.sequence] = outgoing
        self._link_send(outgoing.sequence, kind, fields)

    def _retransmit(self, now: int) -> None:
        for sequence, outgoing in list(self._in_flight.items()):
            if now - outgoing.sent_ns < self.ack_timeout_ns:
                continue
            del self._in_flight[sequence]
            if outgoing.tries < self.max_tries:
                self._transmit(outgoing, now)
            else:
                self._waiting.append(outgoing)  # held until the link answers again or the deadline passes
                outgoing.tries = 1  # the next sending after the outage is a retransmission

    def _expire_waiting(self, now: int) -> None:
        kept = []
        for outgoing in self._waiting:
            if outgoing.deadline_ns <= now:
                self._finish(outgoing, CommandOutcome.DROPPED)
            else:
                kept.append(outgoing)
        self._waiting = kept

    def _resend_unfired(self, now: int) -> None:
        """After an outage: the device may have lost what it acknowledged; same SEQ, so a device that
        kept it does not act twice."""
        for sequence, outgoing in list(self._unfired.items()):
            del self._unfired[sequence]
            if outgoing.command.fire_ns > now:
                outgoing.tries = 1
                self._waiting.append(outgoing)
            else:
                self._bump(unconfirmed=1)  # its moment passed in the outage: fired or not, nobody knows

    def _forget_fired(self, now: int) -> None:
        if not self.status().connected:
            return  # during an outage nothing is known to have fired
        for sequence, outgoing in list(self._unfired.items()):
            if outgoing.command.fire_ns <= now:
                del self._unfired[sequence]
        while len(self._unfired) > REMEMBERED_BY_DEVICE:
            self._unfired.pop(next(iter(self._unfired)))

    def _finish(self, outgoing: _Outgoing, outcome: CommandOutcome) -> None:
        if outcome == CommandOutcome.DROPPED:
            self._bump(dropped=1)
        if not outgoing.future.done():
            outgoing.future.set_result(outcome)

    # --- bookkeeping ----------------------------------------------------------------------------
    def _next_sequence(self) -> int:
        """The next SEQ in 1..65534: never 0 (the Modbus answer words' "none") nor 0xFFFF (a NAK's
        "never arrived"). A SEQ comes back only after 65 533 others (about 1.8 h at 10 heartbeats/s),
        long after the device forgot it (PROTOCOL.md)."""
        with self._status_lock:
            self._sequence = self._sequence % LAST_SEQUENCE + 1
            return self._sequence

    def _update(self, **fields: object) -> None:
        with self._status_lock:
            self._status = self._status.model_copy(update=fields)

    def _bump(self, **counts: int) -> None:
        with self._status_lock:
            self._status = self._status.model_copy(
                update={name: getattr(self._status, name) + value for name, value in counts.items()}
            )
