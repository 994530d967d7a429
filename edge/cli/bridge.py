"""`beltcam bridge ...`: the technician's checks of the actuator link."""

from __future__ import annotations

import argparse

from calibration import CalibrationError
from edge.actuators.link import nozzle_bank, open_transport
from edge.actuators.test_fire import logged_test_fire, test_fire_problem
from edge.cli.common import add_config, number_type, open_store
from edge.config import SiteConfig
from edge.store.command_log import CommandLog
from firmware_bridge.messages import CommandOutcome
from firmware_bridge.valve_device import MAX_PULSE_US

CONNECT_TIMEOUT_S = 5.0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    bridge = commands.add_parser("bridge", help="actuator link: test fire, status")
    steps = bridge.add_subparsers(dest="bridge_command", required=True)
    fire = steps.add_parser("test-fire", help="open one valve now (commissioning)")
    add_config(fire)
    fire.add_argument(
        "--channel",
        type=number_type(0, low_allowed=True, integer=True),
        required=True,
        help="nozzle number, 0 = first",
    )
    fire.add_argument(
        "--pulse-ms",
        type=number_type(0, MAX_PULSE_US / 1000),
        default=20.0,
        help=f"how long the valve opens (up to {MAX_PULSE_US // 1000} ms, as the device accepts)",
    )
    status = steps.add_parser("status", help="connect, show the link's health and the nozzle bank")
    add_config(status)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    bank = nozzle_bank(config.calibration_file)
    if args.bridge_command == "test-fire":
        problem = test_fire_problem(bank, args.channel, args.pulse_ms)
        if problem is not None:
            raise CalibrationError(problem)
    with open_transport(config) as link:
        transport = link.transport
        connected = transport.wait_connected(CONNECT_TIMEOUT_S)
        status = transport.status()
        if args.bridge_command == "status":
            state = "connected" if connected else f"NOT connected: {status.alarm}"
            where = " to the built-in valve simulator (no real valve)" if link.simulator is not None else ""
            print(f"{status.transport} link{where}: {state}")
            print(
                f"nozzle bank: {bank.nozzle_count} nozzles every {bank.pitch_mm:g} mm at "
                f"x = {bank.line_x_mm:g} mm, valve latency {bank.valve_latency_ms:g} ms"
            )
            return 0 if connected else 1
        if not connected:
            raise CalibrationError(f"actuator link not up: {status.alarm}")
        outcome = _logged_test_fire(config, transport, args.channel, args.pulse_ms)
    if outcome == CommandOutcome.DRY_RUN:
        print(f"dry run: no valve opened (channel {args.channel}, {args.pulse_ms:g} ms)")
        return 0
    if outcome != CommandOutcome.ACKED:
        print(f"channel {args.channel}: the device did not acknowledge ({outcome.value})")
        return 1
    print(f"channel {args.channel} opened for {args.pulse_ms:g} ms")
    return 0


def _logged_test_fire(config: SiteConfig, transport, channel: int, pulse_ms: float) -> CommandOutcome:
    store = open_store(config)
    log = CommandLog(store)
    try:
        return logged_test_fire(transport, log, channel, pulse_ms, "beltcam bridge test-fire").result(
            timeout=CONNECT_TIMEOUT_S
        )
    finally:
        log.close()
        store.close()
