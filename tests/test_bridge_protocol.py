"""The serial frame codec and the reference device: every frame round-trips; corrupted frames are
NAKed and never act; fuzzing the decoder and the device finds no crash and no action."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.serial_protocol import (
    ACK_PAYLOAD,
    FIRE_PAYLOAD,
    HEARTBEAT_PAYLOAD,
    INTER_BYTE_TIMEOUT_NS,
    NAK_PAYLOAD,
    PAYLOAD_SIZES,
    STATUS_PAYLOAD,
    TEST_FIRE_PAYLOAD,
    BadFrame,
    Frame,
    FrameDecoder,
    MessageType,
    NakReason,
    crc16,
    encode_frame,
)
from firmware_bridge.valve_device import FAILSAFE, RUNNING, ValveDevice

MS = 1_000_000


def _decode_all(data: bytes, now_ns: int = 0) -> list[Frame | BadFrame]:
    return FrameDecoder().feed(data, now_ns)


def _heartbeat(sequence: int = 1, timeout_ms: int = 500) -> bytes:
    return encode_frame(sequence, MessageType.HEARTBEAT, HEARTBEAT_PAYLOAD.pack(1, timeout_ms))


def _fire(sequence: int, delay_ms: float = 10, pulse_ms: float = 20, mask: int = 0b110, object_id: int = 7):
    payload = FIRE_PAYLOAD.pack(object_id, round(delay_ms * 1000), round(pulse_ms * 1000), mask)
    return encode_frame(sequence, MessageType.FIRE, payload)


def _running_device() -> ValveDevice:
    device = ValveDevice(channels=16)
    device.receive(_heartbeat(), 0)
    assert device.state == RUNNING
    return device


def _replies(data: bytes) -> list[tuple[MessageType, tuple]]:
    decoders = {
        MessageType.ACK: ACK_PAYLOAD,
        MessageType.NAK: NAK_PAYLOAD,
        MessageType.STATUS: STATUS_PAYLOAD,
    }
    return [(f.type, decoders[f.type].unpack(f.payload)) for f in _decode_all(data)]


def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_frame_type_round_trips(message_type):
    payload = bytes(range(PAYLOAD_SIZES[message_type]))
    (frame,) = _decode_all(encode_frame(40000, message_type, payload), now_ns=5)
    assert frame == Frame(40000, message_type, payload, 5)


def test_frames_split_across_reads_and_noise_between_them():
    stream = b"\x00\x13" + _heartbeat(1) + b"\xa5" + _fire(2)  # a stray start byte before the FIRE
    decoder = FrameDecoder()
    found = []
    for index in range(len(stream)):
        found += decoder.feed(stream[index : index + 1], index)
    frames = [f for f in found if isinstance(f, Frame)]
    assert [f.sequence for f in frames] == [1, 2]


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda f: f[:-1] + bytes([f[-1] ^ 0x01]), NakReason.BAD_CRC),
        (lambda f: f[:7] + bytes([f[7] ^ 0x40]) + f[8:], NakReason.BAD_CRC),  # payload bit flip
        (lambda f: f[:1] + bytes([200]) + f[2:], NakReason.BAD_LENGTH),
        (lambda f: _retyped(f, 0x42), NakReason.UNKNOWN_TYPE),
        (lambda f: encode_frame(3, MessageType.FIRE, f[5:-3]), NakReason.BAD_PAYLOAD),  # 19-byte FIRE
    ],
)
def test_corrupted_fire_frames_are_nakked_and_never_act(corrupt, reason):
    device = _running_device()
    replies = device.receive(corrupt(_fire(3)), 1 * MS)
    assert (MessageType.NAK, (3, int(reason))) in _replies(replies)
    assert device.acted == [] and device.openings == []


def _retyped(frame: bytes, new_type: int) -> bytes:
    body = frame[1:4] + bytes([new_type]) + frame[5:-2]
    return bytes([0xA5]) + body + crc16(body).to_bytes(2, "little")


def test_truncated_frame_is_nakked_after_the_inter_byte_timeout():
    device = _running_device()
    assert device.receive(_fire(4)[:9], 1 * MS) == b""
    replies = device.tick(1 * MS + INTER_BYTE_TIMEOUT_NS + 1)
    assert _replies(replies) == [(MessageType.NAK, (4, int(NakReason.TRUNCATED)))]
    assert device.openings == []
    # the line recovers: the next good frame acts
    device.receive(_heartbeat(5), 30 * MS)
    assert _replies(device.receive(_fire(6), 31 * MS)) == [(MessageType.ACK, (6,))]


def test_fire_schedules_openings_and_duplicates_do_not_fire_twice():
    device = _running_device()
    assert _replies(device.receive(_fire(10, delay_ms=10, pulse_ms=20), 100 * MS)) == [
        (MessageType.ACK, (10,))
    ]
    assert _replies(device.receive(_fire(10, delay_ms=5, pulse_ms=20), 104 * MS)) == [
        (MessageType.ACK, (10,))
    ]
    assert [(o.channel, o.open_ns, o.close_ns) for o in device.openings] == [
        (1, 110 * MS, 130 * MS),
        (2, 110 * MS, 130 * MS),
    ]
    assert device.open_channels(120 * MS) == 0b110 and device.open_channels(131 * MS) == 0


def test_overlapping_openings_of_one_channel_merge():
    device = _running_device()
    device.receive(_fire(1, delay_ms=10, pulse_ms=20, mask=1), 0)
    device.receive(_fire(2, delay_ms=25, pulse_ms=20, mask=1), 0)
    assert [(o.open_ns, o.close_ns) for o in device.openings] == [(10 * MS, 45 * MS)]


def test_fire_outside_the_bank_or_in_failsafe_is_refused():
    device = _running_device()
    bad_channel = device.receive(_fire(1, mask=1 << 20), 0)
    assert _replies(bad_channel) == [(MessageType.NAK, (1, int(NakReason.BAD_PAYLOAD)))]
    fresh = ValveDevice(channels=16)  # powered up: fail-safe until the first heartbeat
    assert _replies(fresh.receive(_fire(2), 0)) == [(MessageType.NAK, (2, int(NakReason.BAD_PAYLOAD)))]
    assert fresh.openings == [] and fresh.state == FAILSAFE


def test_watchdog_closes_valves_and_cancels_what_is_to_come():
    device = _running_device()  # 500 ms watchdog armed at t = 0
    device.receive(_fire(1, delay_ms=400, pulse_ms=300, mask=1), 0)  # opens 400..700 ms
    device.receive(_fire(2, delay_ms=800, pulse_ms=50, mask=2), 0)  # would open at 800 ms
    device.tick(501 * MS)
    assert device.state == FAILSAFE
    assert [(o.channel, o.open_ns, o.close_ns) for o in device.openings] == [(0, 400 * MS, 501 * MS)]
    # after the outage the host resends FIRE 2 with its original sequence: it is scheduled again
    device.receive(_heartbeat(3), 600 * MS)
    assert _replies(device.receive(_fire(2, delay_ms=200, pulse_ms=50, mask=2), 600 * MS)) == [
        (MessageType.ACK, (2,))
    ]
    assert device.open_channels(810 * MS) == 0b10


def test_test_fire_and_status():
    device = _running_device()
    device.receive(encode_frame(1, MessageType.TEST_FIRE, TEST_FIRE_PAYLOAD.pack(5, 50_000)), 0)
    (status,) = _replies(device.receive(encode_frame(2, MessageType.STATUS_REQUEST), 10 * MS))
    assert status == (MessageType.STATUS, (RUNNING, 1 << 5, 1, 0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_fuzzed_bytes_never_crash_the_decoder_nor_act(data, chunk):
    device = _running_device()
    for start in range(0, len(data), chunk):
        device.receive(data[start : start + chunk], (start + 1) * MS)
    device.tick(10_000 * MS)
    assert device.acted == [] and device.openings == []


@pytest.mark.parametrize("position", range(len(_fire(9))))
def test_any_single_byte_error_in_a_fire_frame_is_caught(position):
    """Every byte of the frame, CRC included, with every possible error pattern of that byte."""
    for flip in range(1, 256):
        device = _running_device()
        frame = bytearray(_fire(9))
        frame[position] ^= flip
        device.receive(bytes(frame), 1 * MS)
        device.tick(1 * MS + INTER_BYTE_TIMEOUT_NS + 1)
        assert device.acted == [] and device.openings == [], f"byte {position} ^ {flip:#04x} was acted on"


def test_close_all_closes_the_valves_without_waking_a_device_in_fail_safe():
    fresh = ValveDevice(channels=16)  # powered up: fail-safe until the first heartbeat
    fresh.receive(encode_frame(1, MessageType.CLOSE_ALL), 0)
    test_fire = encode_frame(2, MessageType.TEST_FIRE, TEST_FIRE_PAYLOAD.pack(3, 20_000))
    assert _replies(fresh.receive(test_fire, 1 * MS)) == [(MessageType.NAK, (2, int(NakReason.BAD_PAYLOAD)))]
    assert fresh.state == FAILSAFE and fresh.openings == []


def test_a_command_merged_into_another_opening_is_not_lost_in_an_outage():
    device = _running_device()
    device.receive(_fire(10, delay_ms=1000, pulse_ms=20, mask=0b1000), 0)  # 1000..1020 ms, channel 3
    device.receive(_fire(11, delay_ms=1010, pulse_ms=20, mask=0b1000), 0)  # 1010..1030: merged into it
    device.tick(501 * MS)  # the watchdog trips: both cancelled, both forgotten
    device.receive(_heartbeat(3), 600 * MS)
    # the host resends both under their own SEQs: each is scheduled again, the valve closes at 1030 ms
    device.receive(_fire(10, delay_ms=400, pulse_ms=20, mask=0b1000), 600 * MS)
    device.receive(_fire(11, delay_ms=410, pulse_ms=20, mask=0b1000), 600 * MS)
    assert [(o.open_ns, o.close_ns) for o in device.openings] == [(1000 * MS, 1030 * MS)]


def test_a_modbus_test_fire_must_name_exactly_one_channel():
    from firmware_bridge import modbus_map as regs
    from firmware_bridge.modbus_simulator import _as_frame

    device = _running_device()
    two_bits = _as_frame(regs.COMMAND, regs.command_words(5, regs.KIND_TEST_FIRE, 0, 0, 20_000, 0b101000))
    assert _replies(device.receive(two_bits, 1 * MS)) == [(MessageType.NAK, (5, int(NakReason.BAD_PAYLOAD)))]
    one_bit = _as_frame(regs.COMMAND, regs.command_words(6, regs.KIND_TEST_FIRE, 0, 0, 20_000, 0b100000))
    assert _replies(device.receive(one_bit, 2 * MS)) == [(MessageType.ACK, (6,))]
    assert [o.channel for o in device.openings] == [5]
