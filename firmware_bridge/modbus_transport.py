"""The Modbus TCP wire (pymodbus): commands written into the PLC's register map, answered in its
answer registers (PROTOCOL.md, "Modbus TCP"). A Modbus write is itself a request/response, so a
heartbeat that is written is a heartbeat answered; a command is acknowledged only when the answer
register, read right after the write, shows its sequence number."""

from __future__ import annotations

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from firmware_bridge import modbus_map as regs
from firmware_bridge.link import LinkError, LinkTransport


class ModbusTcpTransport(LinkTransport):
    name = "modbus_tcp"

    def __init__(self, host: str, port: int = 502, device_id: int = 1, **timing: float) -> None:
        super().__init__(f"{host}:{port}", **timing)
        self.host, self.port, self.device_id = host, port, device_id
        self._client: ModbusTcpClient | None = None
        self._awaiting: set[int] = set()  # commands written, answer not read yet

    def _link_open(self) -> None:
        client = ModbusTcpClient(self.host, port=self.port, timeout=0.2, retries=0, reconnect_delay=0)
        if not client.connect():
            client.close()
            raise LinkError("connection refused")
        self._client = client
        self._awaiting.clear()

    def _link_close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, *args: object, **kwargs: object):
        try:
            response = getattr(self._client, method)(*args, device_id=self.device_id, **kwargs)
        except (ModbusException, OSError) as error:
            raise LinkError(str(error)) from None
        if response.isError():
            raise LinkError(f"PLC answered {response}")
        return response

    def _link_poll(self, now: int) -> None:
        if self._awaiting:
            self._read_answer(now)

    def _read_answer(self, now: int) -> None:
        answer = self._call("read_holding_registers", regs.ANSWER, count=regs.ANSWER_WORDS).registers
        acked, refused, reason, _ = answer
        if acked in self._awaiting:
            self._awaiting.discard(acked)
            self._acknowledged(acked, now)
        if refused in self._awaiting:
            self._awaiting.discard(refused)
            self._refused(refused, reason)

    def _link_send(self, sequence: int, kind: str, fields: tuple[int, ...]) -> None:
        if kind in ("heartbeat", "session"):  # a written register is an answered one
            if kind == "heartbeat":
                counter, watchdog_ms = fields
                self._call("write_registers", regs.HEARTBEAT, [counter & 0xFFFF, watchdog_ms])
            else:
                self._call("write_registers", regs.SESSION, regs.to_words(fields[0], 2))
            self._acknowledged(sequence, self.clock())
            return
        if kind == "fire":
            words = regs.command_words(sequence, regs.KIND_FIRE, *fields)
        elif kind == "close_all":
            words = regs.command_words(sequence, regs.KIND_CLOSE_ALL, 0, 0, 0, 0)
        else:
            channel, pulse_us = fields
            words = regs.command_words(sequence, regs.KIND_TEST_FIRE, 0, 0, pulse_us, 1 << channel)
        self._call("write_registers", regs.COMMAND, words)
        self._awaiting.add(sequence)
        self._read_answer(self.clock())  # the answer registers hold one command's answer: read it now
