"""What every transport to an actuator does, whatever the wire: commands out with acknowledgement,
retransmission and deadlines; heartbeats; a link-loss alarm; reconnection with back-off; and after
an outage, the acknowledged commands still ahead sent again under their original sequence numbers
(the device ignores those it still has; see PROTOCOL.md).

One worker thread owns the link. Callers hand it commands and get futures that resolve once:
`ACKED`, or `DROPPED` when the deadline passed first (never fired late), or `LATE` when the fire
time had already passed on arrival. Subclasses only open the link and put frames on it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from firmware_bridge.messages import CommandOutcome, LinkStatus, RemovalCommand

log = logging.getLogger(__name__)
REMEMBERED_BY_DEVICE = 64


class LinkError(OSError):
    """The link broke (port gone, connection reset, timeout): reconnect."""


@dataclass
class _Outgoing:
    sequence: int
    command: RemovalCommand | None  # a FIRE; None for a test fire
    test_fire: tuple[int, int] | None  # channel, pulse in microseconds
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
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.where = where
        self.heartbeat_ns = round(heartbeat_ms * 1e6)
        self.watchdog_ms = watchdog_ms
        self.ack_timeout_ns = round(ack_timeout_ms * 1e6)
        self.max_tries = max_tries
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self._open_now = False
        self._incoming: queue.Queue[_Outgoing] = queue.Queue()
        self._waiting: list[_Outgoing] = []  # link down: held until it is up or their deadline passes
        self._in_flight: dict[int, _Outgoing] = {}
        self._unfired: dict[int, _Outgoing] = {}  # acknowledged FIREs still ahead: resent after an outage
        self._sequence = 0
        self._heartbeat_counter = 0
        self._last_heartbeat_sent = 0
        self._heartbeat_pending: int | None = None
        self._status = LinkStatus(transport=self.name, connected=False, alarm="not started")
        self._status_lock = threading.Lock()
        self._stop = threading.Event()
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
        test_fire (channel, pulse_us) or heartbeat (counter, watchdog_ms)."""
        raise NotImplementedError

    # --- public ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name} {self.where}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._open_now:
            self._link_close()
            self._open_now = False

    def send(self, command: RemovalCommand) -> Future[CommandOutcome]:
        outgoing = _Outgoing(self._next_sequence(), command, None)
        self._incoming.put(outgoing)
        return outgoing.future

    def test_fire(self, channel: int, pulse_ms: float) -> Future[CommandOutcome]:
        outgoing = _Outgoing(self._next_sequence(), None, (channel, round(pulse_ms * 1000)))
        self._incoming.put(outgoing)
        return outgoing.future

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
            now = self.clock()
            self._collect_incoming()
            if not self._open_now and not self._open(now):
                self._expire_waiting(now)
                time.sleep(0.01)
                continue
            try:
                self._link_poll(now)
                self._heartbeat(now)
                self._retransmit(now)
                self._dispatch(now)
                self._forget_fired(now)
            except LinkError as error:
                self._link_lost(f"{self.name} link {self.where}: {error}")
            time.sleep(0.0005)

    def _open(self, now: int) -> bool:
        if now < self._reconnect_at:
            return False
        try:
            self._link_open()
        except LinkError as error:
            self._update(connected=False, alarm=f"cannot open {self.where}: {error}")
            self._reconnect_at = now + round(self._reconnect_delay_s * 1e9)
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
        for outgoing in self._in_flight.values():
            if not outgoing.acked:
                self._waiting.append(outgoing)
        self._in_flight.clear()
        self._heartbeat_pending = None

    def _refused(self, sequence: int, reason: int) -> None:
        """The device refused a frame. Sent again on the usual timer (a device in fail-safe accepts
        it after the next heartbeat); refused every time, it is dropped."""
        self._bump(naks=1)
        log.warning("device at %s refused frame %d (reason %d)", self.where, sequence, reason)
        outgoing = self._in_flight.get(sequence)
        if outgoing is None:
            return
        outgoing.refusals += 1
        if outgoing.refusals >= self.max_tries:
            del self._in_flight[sequence]
            self._finish(outgoing, CommandOutcome.DROPPED)

    def _acknowledged(self, sequence: int, now: int) -> None:
        if sequence == self._heartbeat_pending:
            self._heartbeat_pending = None
            was_down = not self.status().connected
            self._update(connected=True, alarm=None, last_heartbeat_ack_ns=now)
            if was_down:
                self._resend_unfired(now)
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

    def _heartbeat(self, now: int) -> None:
        if self._heartbeat_pending is not None and now - self._last_heartbeat_sent > self.heartbeat_ns:
            self._heartbeat_pending = None
            if self.status().connected:
                log.warning("%s link %s: heartbeat unanswered", self.name, self.where)
            self._update(connected=False, alarm=f"device at {self.where} does not answer heartbeats")
        if now - self._last_heartbeat_sent >= self.heartbeat_ns:
            self._heartbeat_counter += 1
            sequence = self._next_sequence()
            self._heartbeat_pending = sequence
            self._last_heartbeat_sent = now
            self._link_send(sequence, "heartbeat", (self._heartbeat_counter & 0xFFFFFFFF, self.watchdog_ms))

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
        waiting, self._waiting = self._waiting, []
        for outgoing in waiting:
            self._transmit(outgoing, now)

    def _transmit(self, outgoing: _Outgoing, now: int) -> None:
        now = self.clock()  # not the loop's reading: earlier requests on a slow wire may have taken a while
        if outgoing.command is not None:
            delay_ns = outgoing.command.fire_ns - now
            if delay_ns <= 0:
                self._finish(outgoing, CommandOutcome.LATE if outgoing.tries == 0 else CommandOutcome.DROPPED)
                return
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
            if outgoing.command is not None and outgoing.command.fire_ns <= now:
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
        with self._status_lock:
            self._sequence = (self._sequence + 1) & 0xFFFF
            return self._sequence

    def _update(self, **fields: object) -> None:
        with self._status_lock:
            self._status = self._status.model_copy(update=fields)

    def _bump(self, **counts: int) -> None:
        with self._status_lock:
            self._status = self._status.model_copy(
                update={name: getattr(self._status, name) + value for name, value in counts.items()}
            )
