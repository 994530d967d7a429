"""A valve-bank controller as PROTOCOL.md specifies it: the reference device, driven by bytes and a
clock. It records every valve opening, so tests and the actuator simulator can judge each firing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from firmware_bridge.serial_protocol import (
    ACK_PAYLOAD,
    FIRE_PAYLOAD,
    HEARTBEAT_PAYLOAD,
    NAK_PAYLOAD,
    SESSION_PAYLOAD,
    STATUS_PAYLOAD,
    TEST_FIRE_PAYLOAD,
    BadFrame,
    Frame,
    FrameDecoder,
    MessageType,
    NakReason,
    encode_frame,
)

REMEMBERED_SEQUENCES = 1024  # PROTOCOL.md asks for at least 64 at once ("Duplicates")
REMEMBER_AFTER_END_NS = 1_000_000_000  # a SEQ is forgotten this long after its openings ended
MAX_PULSE_US = 2_000_000
RUNNING, FAILSAFE = 0, 1


@dataclass
class ValveOpening:
    channel: int
    open_ns: int
    close_ns: int
    object_id: int | None  # None for a test fire
    sequence: int
    # commands merged into this opening (PROTOCOL.md, Overlaps): their SEQ and their own start
    merged: list[tuple[int, int]] = field(default_factory=list)


class ValveDevice:
    """State machine of one controller. `receive` and `tick` take the device's clock reading."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.state = FAILSAFE  # as on power-up: nothing fires before the first heartbeat
        self.openings: list[ValveOpening] = []  # every opening, scheduled or done
        self.fired = 0
        self.naks = 0
        self.acted: list[int] = []  # FIRE/TEST_FIRE sequences acted on, in order
        self.closed_all = 0  # CLOSE_ALL requests obeyed (a host's clean shutdown)
        self._decoder = FrameDecoder()
        self.session = 0  # the host session whose SEQs are remembered; 0 until a host says
        self._remembered: dict[int, int] = {}  # SEQ acted on -> when it may be forgotten
        self._last_valid_ns: int | None = None
        self._timeout_ns = 500_000_000
        self._sequence = 0

    # --- bytes in, bytes out --------------------------------------------------------------------
    def receive(self, data: bytes, now_ns: int) -> bytes:
        replies = bytearray()
        for item in self._decoder.feed(data, now_ns):
            replies += self._answer(item, now_ns)
        self.tick(now_ns)
        return bytes(replies)

    def tick(self, now_ns: int) -> bytes:
        """Time passes: the watchdog may trip; a truncated frame may be given up."""
        replies = bytearray()
        for bad in self._decoder.expire(now_ns):
            replies += self._nak(bad.sequence, bad.reason)
        for sequence, forget_ns in list(self._remembered.items()):
            if forget_ns <= now_ns:
                del self._remembered[sequence]
        if (
            self.state == RUNNING
            and self._last_valid_ns is not None
            and now_ns - self._last_valid_ns > self._timeout_ns
        ):
            self.fail_safe(now_ns)
        return bytes(replies)

    def fail_safe(self, now_ns: int) -> None:
        """Close every valve now and forget every opening still to come."""
        self.state = FAILSAFE
        kept = []
        for opening in self.openings:
            for sequence, own_open_ns in opening.merged:
                if own_open_ns >= now_ns:  # a merged command that had not started: forget it too
                    self._remembered.pop(sequence, None)
            if opening.open_ns >= now_ns:
                # cancelled, and forgotten: the host's resend after the outage schedules it again
                self._remembered.pop(opening.sequence, None)
                continue
            if opening.close_ns > now_ns:
                opening.close_ns = now_ns  # closed early
            kept.append(opening)
        self.openings = kept

    def open_channels(self, now_ns: int) -> int:
        mask = 0
        for opening in self.openings:
            if opening.open_ns <= now_ns < opening.close_ns:
                mask |= 1 << opening.channel
        return mask

    # --- handling -------------------------------------------------------------------------------
    def _answer(self, item: Frame | BadFrame, now_ns: int) -> bytes:
        if isinstance(item, BadFrame):
            return self._nak(item.sequence, item.reason)
        self._last_valid_ns = now_ns
        if item.type == MessageType.HEARTBEAT:
            _, timeout_ms = HEARTBEAT_PAYLOAD.unpack(item.payload)
            if not 50 <= timeout_ms <= 10_000:
                return self._nak(item.sequence, NakReason.BAD_PAYLOAD)
            self._timeout_ns = timeout_ms * 1_000_000
            self.state = RUNNING
            return self._ack(item.sequence)
        if item.type == MessageType.STATUS_REQUEST:
            payload = STATUS_PAYLOAD.pack(self.state, self.open_channels(now_ns), self.fired, self.naks)
            return self._reply(MessageType.STATUS, payload)
        if item.type == MessageType.SESSION:
            (session,) = SESSION_PAYLOAD.unpack(item.payload)
            if session == 0:
                return self._nak(item.sequence, NakReason.BAD_PAYLOAD)
            if session != self.session:  # a new host: its SEQs have nothing to do with the last one's
                self.session = session
                self._remembered.clear()
            return self._ack(item.sequence)
        if item.type == MessageType.CLOSE_ALL:
            self.closed_all += 1
            state = self.state  # closing the valves is no watchdog trip, nor a heartbeat
            self.fail_safe(now_ns)
            self.state = state
            return self._ack(item.sequence)
        if item.type in (MessageType.FIRE, MessageType.TEST_FIRE):
            return self._fire(item, now_ns)
        return self._nak(item.sequence, NakReason.UNKNOWN_TYPE)  # a device-to-host type sent to us

    def _fire(self, frame: Frame, now_ns: int) -> bytes:
        if frame.sequence in self._remembered:
            return self._ack(frame.sequence)  # a retransmission of what we already did
        if frame.type == MessageType.FIRE:
            object_id, delay_us, pulse_us, mask = FIRE_PAYLOAD.unpack(frame.payload)
            channels = [c for c in range(64) if mask >> c & 1]
        else:
            channel, pulse_us = TEST_FIRE_PAYLOAD.unpack(frame.payload)
            object_id, delay_us, channels = None, 0, [channel]
        if (
            self.state != RUNNING
            or not channels
            or max(channels) >= self.channels
            or not 1 <= pulse_us <= MAX_PULSE_US
        ):
            return self._nak(frame.sequence, NakReason.BAD_PAYLOAD)
        self.acted.append(frame.sequence)
        start = frame.received_ns + delay_us * 1000
        self._remember(frame.sequence, start + pulse_us * 1000 + REMEMBER_AFTER_END_NS)
        for channel in channels:
            self._schedule(ValveOpening(channel, start, start + pulse_us * 1000, object_id, frame.sequence))
        return self._ack(frame.sequence)

    def _remember(self, sequence: int, forget_ns: int) -> None:
        if len(self._remembered) >= REMEMBERED_SEQUENCES:
            del self._remembered[min(self._remembered, key=self._remembered.__getitem__)]
        self._remembered[sequence] = forget_ns

    def _schedule(self, opening: ValveOpening) -> None:
        """Overlapping openings of one channel merge into one."""
        for existing in self.openings:
            if (
                existing.channel == opening.channel
                and existing.open_ns <= opening.close_ns
                and opening.open_ns <= existing.close_ns
            ):
                existing.merged.append((opening.sequence, opening.open_ns))
                existing.open_ns = min(existing.open_ns, opening.open_ns)
                existing.close_ns = max(existing.close_ns, opening.close_ns)
                return
        self.openings.append(opening)
        self.fired += 1

    def _ack(self, sequence: int) -> bytes:
        return self._reply(MessageType.ACK, ACK_PAYLOAD.pack(sequence))

    def _nak(self, sequence: int, reason: NakReason) -> bytes:
        self.naks += 1
        return self._reply(MessageType.NAK, NAK_PAYLOAD.pack(sequence, int(reason)))

    def _reply(self, message_type: MessageType, payload: bytes) -> bytes:
        self._sequence = (self._sequence + 1) & 0xFFFF
        return encode_frame(self._sequence, message_type, payload)


class ValveSimulator:
    """What both simulators share: a device that can lose power and boot again, and its record."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.device = ValveDevice(channels)
        self.lock = threading.Lock()

    def power_off(self) -> None:
        raise NotImplementedError

    def power_on(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _reboot(self) -> None:
        """Empty memory, fail-safe until the first heartbeat; the record of openings survives."""
        with self.lock:
            previous = self.device
            self.device = ValveDevice(self.channels)
            self.device.openings, self.device.acted = previous.openings, previous.acted

    def restart(self, off_s: float) -> None:
        self.power_off()
        time.sleep(off_s)
        self.power_on()

    def openings(self) -> list[ValveOpening]:
        with self.lock:
            return list(self.device.openings)

    def __enter__(self) -> ValveSimulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
