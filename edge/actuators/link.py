"""The firmware bridge, wired to this site: the transport the config names and the nozzle bank the
calibration measured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from calibration import ActuatorGeometry, CalibrationError, load_calibration
from edge.config import SiteConfig
from firmware_bridge.dry_run import DryRunTransport
from firmware_bridge.link import LinkTransport
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.planner import MAX_NOZZLES, NozzleBank
from firmware_bridge.serial_transport import SerialTransport

SIMULATED_CHANNELS = MAX_NOZZLES


def nozzle_bank(calibration_file: Path | None) -> NozzleBank:
    """The ejector geometry from the site calibration (`beltcam calibrate actuators`)."""
    if calibration_file is None:
        raise CalibrationError(
            "calibration_file is not set in the site file: the ejector geometry lives there"
        )
    actuators = load_calibration(calibration_file).actuators
    if actuators is None:
        raise CalibrationError(f"{calibration_file}: no actuators yet: run `beltcam calibrate actuators`")
    if actuators.nozzle_count > MAX_NOZZLES:
        raise CalibrationError(
            f"{calibration_file}: actuators.nozzle_count: at most {MAX_NOZZLES} nozzles per bank"
        )
    return bank_of(actuators)


def bank_of(actuators: ActuatorGeometry) -> NozzleBank:
    """The planner's view of a calibrated ejector."""
    return NozzleBank(
        line_x_mm=actuators.ejector_line_x_mm, nozzle_count=actuators.nozzle_count,
        pitch_mm=actuators.nozzle_pitch_mm, first_nozzle_y_mm=actuators.first_nozzle_y_mm,
        valve_latency_ms=actuators.valve_latency_ms, min_pulse_ms=actuators.min_pulse_ms,
    )  # fmt: skip


@dataclass(frozen=True)
class ActuatorLink:
    """The started transport, and the in-process reference PLC behind it when the site simulates
    its actuators (None for real links and dry runs): the judge of the simulator's valve openings."""

    transport: LinkTransport | DryRunTransport
    simulator: ModbusValveSimulator | None


@contextmanager
def open_transport(config: SiteConfig) -> Iterator[ActuatorLink]:
    """The configured link, started; with `transport: simulator` the reference PLC runs in-process
    on loopback and is reached over real Modbus TCP."""
    bridge = config.bridge
    timing = {"heartbeat_ms": bridge.heartbeat_ms, "watchdog_ms": bridge.watchdog_ms}
    simulator = None
    if bridge.dry_run:
        transport = DryRunTransport()
    elif bridge.transport == "serial":
        transport = SerialTransport(bridge.serial_port, bridge.baudrate, **timing)
    elif bridge.transport == "modbus_tcp":
        transport = ModbusTcpTransport(bridge.host, bridge.port, **timing)
    else:
        simulator = ModbusValveSimulator(SIMULATED_CHANNELS)
        transport = ModbusTcpTransport("127.0.0.1", simulator.port, **timing)
    transport.start()
    try:
        yield ActuatorLink(transport, simulator)
    finally:
        transport.close()
        if simulator is not None:
            simulator.close()
