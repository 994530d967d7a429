"""Firmware bridge on loopback: how fast and how punctually commands reach the (simulated) valves.

For each transport (serial over a pseudo-terminal, Modbus TCP over 127.0.0.1), with the reference
device behind it:
  ack latency   send() to acknowledgement, p50/p99/max, one command at a time
  fire error    valve opening minus commanded fire time, p50/p99/max of |error|, commands 50 ms ahead
  rate          commands acknowledged per second when a burst of N is queued at once (all must fire)

    .venv/bin/python -m benchmarks.bridge [--commands 300] [--burst 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import describe_machine, run_record, write_results
from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.serial_simulator import SerialValveSimulator
from firmware_bridge.serial_transport import SerialTransport

MS = 1_000_000
CHANNELS = 16


def _links():
    serial_sim = SerialValveSimulator(CHANNELS)
    yield "serial (pty)", serial_sim, SerialTransport(serial_sim.port)
    modbus_sim = ModbusValveSimulator(CHANNELS)
    yield "modbus_tcp (loopback)", modbus_sim, ModbusTcpTransport("127.0.0.1", modbus_sim.port)


def _command(object_id: int, fire_ns: int) -> RemovalCommand:
    return RemovalCommand(
        object_id=object_id, sequence=object_id, fire_ns=fire_ns, channels=(object_id % CHANNELS,),
        pulse_ms=1.0, capture_ns=fire_ns,
    )  # fmt: skip


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def measure(simulator, transport, commands: int, burst: int) -> dict:
    transport.start()
    if not transport.wait_connected(5.0):
        raise RuntimeError(f"{transport.name}: no connection to the simulator")
    ack_ms, fire_ns = [], {}
    for object_id in range(1, commands + 1):
        started = time.monotonic_ns()
        fire_ns[object_id] = started + 50 * MS
        outcome = transport.send(_command(object_id, fire_ns[object_id])).result(timeout=2)
        ack_ms.append((time.monotonic_ns() - started) / MS)
        if outcome != CommandOutcome.ACKED:
            raise RuntimeError(f"{transport.name}: command {object_id} {outcome} ({transport.status()})")
        time.sleep(0.002)
    time.sleep(0.1)
    opened = {o.object_id: o.open_ns for o in simulator.openings()}
    fire_error_ms = [abs(opened[k] - fire_ns[k]) / MS for k in fire_ns]
    # a burst queued at once, fire times far enough ahead that none can be late
    start = time.monotonic_ns()
    burst_ids = range(commands + 1, commands + 1 + burst)
    futures = [transport.send(_command(k, start + 5_000 * MS + k * 2 * MS)) for k in burst_ids]
    outcomes = [f.result(timeout=60) for f in futures]
    elapsed_s = (time.monotonic_ns() - start) / 1e9
    transport.close()
    acked = sum(outcome == CommandOutcome.ACKED for outcome in outcomes)
    return {
        "ack_latency_ms": _percentiles(ack_ms),
        "fire_error_ms": _percentiles(fire_error_ms),
        "burst_commands_per_s": round(acked / elapsed_s, 1),
        "burst_acked": f"{acked}/{burst}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for name, simulator, transport in _links():
        rows.append({"transport": name, **measure(simulator, transport, args.commands, args.burst)})
        simulator.close()
        print(rows[-1], flush=True)
    print(f"\nfirmware bridge on loopback ({describe_machine()})")
    print(
        f"{'transport':>22} {'ack p50/p99/max ms':>22} {'fire error p50/p99/max ms':>28} {'burst cmd/s':>12}"
    )
    for row in rows:
        ack, err = row["ack_latency_ms"], row["fire_error_ms"]
        print(
            f"{row['transport']:>22} {ack['p50']:>6}/{ack['p99']}/{ack['max']:<8} "
            f"{err['p50']:>10}/{err['p99']}/{err['max']:<8} {row['burst_commands_per_s']:>12}"
        )
    write_results("bridge", rows)
    write_results("bridge_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
