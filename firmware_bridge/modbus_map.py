"""The PLC's holding-register map (PROTOCOL.md, "Modbus TCP"): where the host writes commands and
heartbeats and where the PLC answers. 32- and 64-bit values are stored high word first."""

from __future__ import annotations

HEARTBEAT = 0  # 0: counter, 1: watchdog timeout in ms (one write of both)
SESSION = 2  # 2-3: the host's session id, written when the link comes up
COMMAND = 10  # 10: sequence, 11: kind, 12-13: object id, 14-15: delay us, 16-17: pulse us, 18-21: channels
COMMAND_WORDS = 12
ANSWER = 30  # 30: last acknowledged sequence, 31: last refused sequence, 32: refusal reason, 33: state
ANSWER_WORDS = 4
STATUS = 34  # 34-37: open channels, 38-39: valve openings since power-up
STATUS_WORDS = 6
REGISTERS = 64

KIND_FIRE = 1
KIND_TEST_FIRE = 3
KIND_CLOSE_ALL = 5
NO_SEQUENCE = 0xFFFF


def to_words(value: int, words: int) -> list[int]:
    return [(value >> (16 * (words - 1 - index))) & 0xFFFF for index in range(words)]


def from_words(words: list[int]) -> int:
    value = 0
    for word in words:
        value = value << 16 | word
    return value


def command_words(
    sequence: int, kind: int, object_id: int, delay_us: int, pulse_us: int, channels: int
) -> list[int]:
    return [
        sequence & 0xFFFF, kind, *to_words(object_id, 2), *to_words(delay_us, 2), *to_words(pulse_us, 2),
        *to_words(channels, 4),
    ]  # fmt: skip
