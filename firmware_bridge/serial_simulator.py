"""The reference valve device on a pseudo-terminal: the host opens `simulator.port` with pyserial
exactly as it would open /dev/ttyUSB0. Only the valves are simulated; the serial line is real."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty

from firmware_bridge.valve_device import ValveSimulator


class SerialValveSimulator(ValveSimulator):
    def __init__(self, channels: int = 16) -> None:
        super().__init__(channels)
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the line stays up when the host closes and reopens it
        self._powered = threading.Event()
        self._powered.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serial-valve-simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.001)
            now = time.monotonic_ns()
            data = os.read(self._master, 4096) if readable else b""
            if not self._powered.is_set():
                continue  # a dead device: bytes vanish, nothing answers
            with self.lock:
                reply = self.device.receive(data, now) if data else self.device.tick(now)
            if reply:
                os.write(self._master, reply)

    def power_off(self) -> None:
        """The device dies: bytes vanish, nothing answers, openings still to come never happen."""
        self._powered.clear()
        with self.lock:
            self.device.fail_safe(time.monotonic_ns())

    def power_on(self) -> None:
        """It boots again: empty memory, fail-safe until the first heartbeat."""
        self._reboot()
        self._powered.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
