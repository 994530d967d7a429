"""A PLC driving a valve bank, behind a real pymodbus TCP server on loopback. Commands written to the
register map are handed to the reference valve device (valve_device.py), so the PLC behaves exactly
as the serial firmware does: same scheduling, duplicate suppression and fail-safe."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_bridge import modbus_map as regs
from firmware_bridge.serial_protocol import (
    ACK_PAYLOAD,
    FIRE_PAYLOAD,
    HEARTBEAT_PAYLOAD,
    NAK_PAYLOAD,
    SESSION_PAYLOAD,
    TEST_FIRE_PAYLOAD,
    FrameDecoder,
    MessageType,
    NakReason,
    encode_frame,
)
from firmware_bridge.valve_device import ValveSimulator

WRITE_REGISTERS = 16
KINDS = (regs.KIND_FIRE, regs.KIND_TEST_FIRE, regs.KIND_CLOSE_ALL)


class ModbusValveSimulator(ValveSimulator):
    def __init__(self, channels: int = 16, port: int = 0) -> None:
        super().__init__(channels)
        self._requested_port = port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._powered = False
        self.start()

    # --- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Power up (again): a fresh PLC program state, in fail-safe until the first heartbeat."""
        self._ready.clear()
        self._powered = True
        self._thread = threading.Thread(target=self._serve, name="modbus-valve-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the Modbus valve simulator did not start")

    def power_off(self) -> None:
        """The PLC dies: openings still to come never happen, and the server goes away."""
        with self.lock:
            self._powered = False
            self.device.fail_safe(time.monotonic_ns())
        if self._loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def power_on(self) -> None:
        """It boots again: empty memory, fail-safe until the first heartbeat."""
        self._reboot()
        self.start()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.power_off()

    # --- server --------------------------------------------------------------------------------
    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        block = SimData(0, count=regs.REGISTERS, values=0, datatype=DataType.REGISTERS)
        device = SimDevice(1, simdata=[block], action=self._action)
        port = self.port or self._requested_port or _free_port()
        self._server = ModbusTcpServer(device, address=("127.0.0.1", port))
        self.port = port
        watchdog = asyncio.create_task(self._watchdog())
        await self._server.serve_forever(background=True)
        self._ready.set()
        while self._server.is_active():
            await asyncio.sleep(0.05)
        watchdog.cancel()

    async def _watchdog(self) -> None:
        while True:
            with self.lock:
                if self._powered:
                    self.device.tick(time.monotonic_ns())
            await asyncio.sleep(0.001)

    async def _action(self, function_code, start_address, address, count, registers, values):
        """Runs on every request, before the registers are read or written: a write of the command
        block or the heartbeat is executed here and answered in the answer registers."""
        now = time.monotonic_ns()
        with self.lock:
            if not self._powered:
                return ExcCodes.DEVICE_FAILURE  # going down: no longer acting on anything
            if function_code == WRITE_REGISTERS and values is not None:
                if address == regs.COMMAND and len(values) == regs.COMMAND_WORDS and values[1] not in KINDS:
                    _refuse(registers, start_address, values[0], NakReason.UNKNOWN_TYPE)
                frame = _as_frame(address, list(values))
                if frame is not None:
                    session = self.device.session
                    reply = FrameDecoder().feed(self.device.receive(frame, now), now)
                    if self.device.session != session:  # a new host: its SEQs mean nothing of the last one's
                        registers[regs.ANSWER - start_address : regs.ANSWER + 2 - start_address] = [0, 0]
                    _answer(registers, start_address, reply)
            status = [*regs.to_words(self.device.open_channels(now), 4), *regs.to_words(self.device.fired, 2)]
            registers[regs.STATUS - start_address : regs.STATUS - start_address + regs.STATUS_WORDS] = status
            registers[regs.ANSWER + 3 - start_address] = self.device.state
        return None


def _as_frame(address: int, values: list[int]) -> bytes | None:
    """The register write as the equivalent serial frame, so one device model serves both wires."""
    if address == regs.HEARTBEAT and len(values) == 2:
        return encode_frame(0, MessageType.HEARTBEAT, HEARTBEAT_PAYLOAD.pack(values[0], values[1]))
    if address == regs.SESSION and len(values) == 2:
        return encode_frame(0, MessageType.SESSION, SESSION_PAYLOAD.pack(regs.from_words(values)))
    if address != regs.COMMAND or len(values) != regs.COMMAND_WORDS:
        return None
    sequence, kind = values[0], values[1]
    object_id, delay_us = regs.from_words(values[2:4]), regs.from_words(values[4:6])
    pulse_us, channels = regs.from_words(values[6:8]), regs.from_words(values[8:12])
    if kind == regs.KIND_FIRE:
        return encode_frame(
            sequence, MessageType.FIRE, FIRE_PAYLOAD.pack(object_id, delay_us, pulse_us, channels)
        )
    if kind == regs.KIND_TEST_FIRE:  # exactly one bit, or a channel no bank has: refused
        channel = channels.bit_length() - 1 if channels.bit_count() == 1 else 0xFF
        return encode_frame(
            sequence, MessageType.TEST_FIRE, TEST_FIRE_PAYLOAD.pack(min(channel, 0xFF), pulse_us)
        )
    if kind == regs.KIND_CLOSE_ALL:
        return encode_frame(sequence, MessageType.CLOSE_ALL)
    return None  # an unknown kind: already refused


def _answer(registers: list[int], start_address: int, replies: list) -> None:
    for reply in replies:
        if reply.type == MessageType.ACK:
            (sequence,) = ACK_PAYLOAD.unpack(reply.payload)
            if sequence:  # heartbeats travel as sequence 0 and need no answer register
                registers[regs.ANSWER - start_address] = sequence
        elif reply.type == MessageType.NAK:
            _refuse(registers, start_address, *NAK_PAYLOAD.unpack(reply.payload))


def _refuse(registers: list[int], start_address: int, sequence: int, reason: int) -> None:
    registers[regs.ANSWER + 1 - start_address] = sequence
    registers[regs.ANSWER + 2 - start_address] = int(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
