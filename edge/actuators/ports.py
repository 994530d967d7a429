"""The actuator links a technician can pick from at `beltcam init`: serial ports present on this
machine, and whether a Modbus TCP controller answers at an address."""

from __future__ import annotations

import socket

from serial.tools import list_ports

TRY_TIMEOUT_S = 3.0


def serial_ports() -> list[tuple[str, str]]:
    """(device, description) of every serial port, e.g. ("/dev/ttyUSB0", "FT232R USB UART")."""
    return [(port.device, port.description or "") for port in sorted(list_ports.comports())]


def modbus_reachable(host: str, port: int, timeout_s: float = TRY_TIMEOUT_S) -> str | None:
    """None when something accepts TCP connections there, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as error:
        return f"{host}:{port}: {error.strerror or error}"
