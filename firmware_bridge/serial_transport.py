"""The serial wire (PROTOCOL.md) over pyserial: frames out, ACK/NAK frames in."""

from __future__ import annotations

import serial

from firmware_bridge.link import LinkError, LinkTransport
from firmware_bridge.serial_protocol import (
    ACK_PAYLOAD,
    FIRE_PAYLOAD,
    HEARTBEAT_PAYLOAD,
    NAK_PAYLOAD,
    SESSION_PAYLOAD,
    TEST_FIRE_PAYLOAD,
    Frame,
    FrameDecoder,
    MessageType,
    encode_frame,
)

FRAME_ENCODINGS = {  # the link's message kinds as serial frames: type and payload layout
    "fire": (MessageType.FIRE, FIRE_PAYLOAD),
    "test_fire": (MessageType.TEST_FIRE, TEST_FIRE_PAYLOAD),
    "heartbeat": (MessageType.HEARTBEAT, HEARTBEAT_PAYLOAD),
    "session": (MessageType.SESSION, SESSION_PAYLOAD),
    "close_all": (MessageType.CLOSE_ALL, None),
}


class SerialTransport(LinkTransport):
    name = "serial"

    def __init__(self, port: str, baudrate: int = 115_200, **timing: float) -> None:
        super().__init__(port, **timing)
        self.port, self.baudrate = port, baudrate
        self._link: serial.Serial | None = None
        self._decoder = FrameDecoder()

    def _link_open(self) -> None:
        try:
            # exclusive: a second agent (or a terminal program) on the same port would interleave frames
            self._link = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=0.1, exclusive=True
            )
        except (OSError, serial.SerialException) as error:
            raise LinkError(str(error)) from None
        self._decoder = FrameDecoder()

    def _link_close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _link_poll(self, now: int) -> None:
        try:
            data = self._link.read(4096)
        except (OSError, serial.SerialException) as error:
            raise LinkError(str(error)) from None
        for item in self._decoder.feed(data, now):
            if not isinstance(item, Frame):
                continue  # a garbled reply: the retransmission timer covers it
            if item.type == MessageType.ACK:
                self._acknowledged(ACK_PAYLOAD.unpack(item.payload)[0], now)
            elif item.type == MessageType.NAK:
                self._refused(*NAK_PAYLOAD.unpack(item.payload))

    def _link_send(self, sequence: int, kind: str, fields: tuple[int, ...]) -> None:
        message_type, layout = FRAME_ENCODINGS[kind]
        payload = layout.pack(*fields) if layout is not None else b""
        try:
            self._link.write(encode_frame(sequence, message_type, payload))
        except (OSError, serial.SerialException) as error:
            raise LinkError(str(error)) from None
