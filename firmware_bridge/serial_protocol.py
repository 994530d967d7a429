"""The serial frame codec of PROTOCOL.md: encoding, and a streaming decoder that never acts on a
malformed frame. Pure functions of bytes and times, so the same code runs in the host transport,
the device simulator and the fuzz tests."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum

START = 0xA5
MAX_PAYLOAD = 64
HEADER = struct.Struct("<BBHB")  # START, LEN, SEQ, TYPE
CRC = struct.Struct("<H")
INTER_BYTE_TIMEOUT_NS = 20_000_000
NO_SEQUENCE = 0xFFFF


class MessageType(IntEnum):
    FIRE = 0x01
    HEARTBEAT = 0x02
    TEST_FIRE = 0x03
    STATUS_REQUEST = 0x04
    CLOSE_ALL = 0x05
    SESSION = 0x06
    ACK = 0x80
    NAK = 0x81
    STATUS = 0x82


class NakReason(IntEnum):
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    BAD_PAYLOAD = 4
    TRUNCATED = 5


FIRE_PAYLOAD = struct.Struct("<IIIQ")  # object_id, delay_us, pulse_us, channels
HEARTBEAT_PAYLOAD = struct.Struct("<IH")  # counter, timeout_ms
TEST_FIRE_PAYLOAD = struct.Struct("<BI")  # channel, pulse_us
SESSION_PAYLOAD = struct.Struct("<I")  # session id, never 0
ACK_PAYLOAD = struct.Struct("<H")
NAK_PAYLOAD = struct.Struct("<HB")
STATUS_PAYLOAD = struct.Struct("<BQII")  # state, open channels, fired, naks
PAYLOAD_SIZES = {
    MessageType.FIRE: FIRE_PAYLOAD.size,
    MessageType.HEARTBEAT: HEARTBEAT_PAYLOAD.size,
    MessageType.TEST_FIRE: TEST_FIRE_PAYLOAD.size,
    MessageType.STATUS_REQUEST: 0,
    MessageType.CLOSE_ALL: 0,
    MessageType.SESSION: SESSION_PAYLOAD.size,
    MessageType.ACK: ACK_PAYLOAD.size,
    MessageType.NAK: NAK_PAYLOAD.size,
    MessageType.STATUS: STATUS_PAYLOAD.size,
}


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (binascii's CRC-CCITT with the 0xFFFF start)."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(sequence: int, message_type: MessageType, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    body = HEADER.pack(START, len(payload), sequence & 0xFFFF, int(message_type))[1:] + payload
    return bytes([START]) + body + CRC.pack(crc16(body))


@dataclass(frozen=True)
class Frame:
    sequence: int
    type: MessageType
    payload: bytes
    received_ns: int  # when its last byte arrived


@dataclass(frozen=True)
class BadFrame:
    """A frame that must be answered with NAK and not acted on."""

    sequence: int  # as received (unreliable), NO_SEQUENCE when it never arrived
    reason: NakReason


class FrameDecoder:
    """Bytes in, frames and bad frames out, resynchronising on the start byte."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._last_byte_ns: int | None = None

    def feed(self, data: bytes, now_ns: int) -> list[Frame | BadFrame]:
        results: list[Frame | BadFrame] = []
        results.extend(self.expire(now_ns))
        if data:
            self._buffer.extend(data)
            self._last_byte_ns = now_ns
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._buffer.clear()
                return results
            del self._buffer[:start]
            if len(self._buffer) < 2:
                return results
            length = self._buffer[1]
            if length > MAX_PAYLOAD:
                sequence = self._partial_sequence()
                del self._buffer[:1]
                results.append(BadFrame(sequence, NakReason.BAD_LENGTH))
                continue
            size = HEADER.size + length + CRC.size
            if len(self._buffer) < size:
                return results
            raw = bytes(self._buffer[:size])
            outcome = _check(raw, now_ns)
            if isinstance(outcome, BadFrame) and outcome.reason == NakReason.BAD_CRC:
                del self._buffer[:1]  # the start byte may have been noise: look again from the next byte
            else:
                del self._buffer[:size]
            results.append(outcome)

    def expire(self, now_ns: int) -> list[BadFrame]:
        """A frame left incomplete for longer than the inter-byte timeout is dropped as TRUNCATED."""
        if (
            self._buffer
            and self._last_byte_ns is not None
            and now_ns - self._last_byte_ns > INTER_BYTE_TIMEOUT_NS
        ):
            sequence = self._partial_sequence() if self._buffer[0] == START else NO_SEQUENCE
            had_start = START in self._buffer
            self._buffer.clear()
            return [BadFrame(sequence, NakReason.TRUNCATED)] if had_start else []
        return []

    def _partial_sequence(self) -> int:
        return int.from_bytes(self._buffer[2:4], "little") if len(self._buffer) >= 4 else NO_SEQUENCE


def _check(raw: bytes, now_ns: int) -> Frame | BadFrame:
    _, length, sequence, type_code = HEADER.unpack_from(raw)
    (crc,) = CRC.unpack_from(raw, HEADER.size + length)
    if crc16(raw[1 : HEADER.size + length]) != crc:
        return BadFrame(sequence, NakReason.BAD_CRC)
    try:
        message_type = MessageType(type_code)
    except ValueError:
        return BadFrame(sequence, NakReason.UNKNOWN_TYPE)
    if PAYLOAD_SIZES[message_type] != length:
        return BadFrame(sequence, NakReason.BAD_PAYLOAD)
    return Frame(sequence, message_type, raw[HEADER.size : HEADER.size + length], now_ns)
