"""Fault injection on the simulated belt: what a plant manager asks after each kind of fault.

  sigkill      `beltcam record` killed with SIGKILL at a random moment, then started again: frames
               lost (on disk at the kill, not indexed after the restart's start-up check) against
               frames in flight (on disk, not yet indexed, at the kill); `db check` problems and
               recordings left open afterwards; seconds from the restart to its first indexed frame.
  full disk    the data directory's own small filesystem (tmpfs) filled by another program while
               recording, then freed: frames dropped while paused, seconds from the space coming back
               to the first frame written, `db check` problems and open recordings afterwards.
  host restart a host session (transport started, one FIRE and one test fire, closed) against a valve
               device that stays powered, repeated: commands swallowed (acknowledged, never opened),
               fired late (> 2 ms after their time) and fired twice, judged on the device's own record.
  link cut     the device loses power at a random moment for 50-300 ms under a stream of commands:
               commands swallowed (acknowledged, due after the recovery, never opened), fired late,
               fired twice; commands dropped because their time fell in the outage are counted apart.

    .venv/bin/python -m benchmarks.faults [--kills 20] [--disks 10] [--restarts 20] [--cuts 20]

The full-disk rows mount a tmpfs and need root (as the tests do).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from sqlalchemy import func, select

from benchmarks.common import describe_machine, run_record, write_results
from edge.capture.cameras import build_sources
from edge.config import load_config
from edge.recorder.recorder import Recorder
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Recording
from edge.store.reconcile import check_store
from firmware_bridge.messages import CommandOutcome, RemovalCommand
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.serial_simulator import SerialValveSimulator
from firmware_bridge.serial_transport import SerialTransport

MS = 1_000_000
LATE_NS = 2 * MS
BELTCAM = [sys.executable, "-m", "edge.cli"]
SITE = {
    "cameras": [
        {"id": camera, "kind": "simulated", "resolution": [320, 240], "fps": 15} for camera in ("c1", "c2")
    ],
    "storage": {"data_dir": "data", "image_format": "png", "min_free_mb": 1},
    "recorder": {"commit_every_s": 0.5, "segment_s": 2.0, "reconnect_initial_s": 0.05},
    "simulator": {"seed": 3, "objects_per_m": 6, "truth_every": 3},
}
TIMING = {"heartbeat_ms": 50, "watchdog_ms": 200}


def _site(folder: Path, **storage) -> Path:
    site = {**SITE, "storage": {**SITE["storage"], **storage}}
    path = folder / "beltcam.yaml"
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    return path


def _files(data_dir: Path) -> set[str]:
    frames = data_dir / "frames"
    return {p.relative_to(data_dir).as_posix() for p in frames.rglob("*.png")} if frames.is_dir() else set()


def _indexed(data_dir: Path) -> set[str]:
    store = FrameStore(data_dir, f"sqlite:///{data_dir / 'beltcam.db'}")
    try:
        with store.session() as session:
            return set(session.scalars(select(Frame.path)))
    finally:
        store.close()


def _aftermath(data_dir: Path) -> tuple[int, int]:
    """Problems `db check` finds, and recordings left open."""
    store = FrameStore(data_dir, f"sqlite:///{data_dir / 'beltcam.db'}")
    try:
        report = check_store(store)
        problems = sum(
            len(items)
            for items in (
                report.missing_frames, report.missing_masks, report.orphan_frames, report.orphan_masks,
                report.unknown_files, report.temp_files, report.count_mismatches, report.unfinished_imports,
            )
        )  # fmt: skip
        return problems, len(report.open_recordings)
    finally:
        store.close()


def sigkill_once(folder: Path, rng: random.Random) -> dict:
    path = _site(folder)
    data_dir = folder / "data"
    recorder = subprocess.Popen([*BELTCAM, "record", "--config", str(path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (data_dir / "beltcam.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(1.0, 3.0))
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait()
    on_disk, indexed = _files(data_dir), _indexed(data_dir)
    in_flight = len(on_disk - indexed)
    restarted = time.monotonic()
    second = subprocess.Popen(
        [*BELTCAM, "record", "--config", str(path), "--duration", "1.5"], stdout=subprocess.DEVNULL
    )
    resume_s = None
    while second.poll() is None:
        if len(_indexed(data_dir) - on_disk) > 0:
            resume_s = time.monotonic() - restarted
            break
        time.sleep(0.02)
    second.wait()
    lost = len(on_disk - _indexed(data_dir))
    problems, still_open = _aftermath(data_dir)
    return {"in_flight": in_flight, "lost": lost, "problems": problems, "open": still_open,
            "resume_s": resume_s}  # fmt: skip


def full_disk_once(folder: Path) -> dict:
    disk = folder / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], check=True)
    try:
        config = load_config(_site(folder, data_dir=str(disk / "data"), min_free_mb=2))
        store = FrameStore.from_config(config.storage)
        recorder = Recorder(config, store, build_sources(config))
        freed = []

        def fill_then_free() -> None:  # another program takes whatever the recorder frees
            time.sleep(1.5)
            ballast = disk / "ballast.bin"
            with ballast.open("ab") as out:
                until = time.monotonic() + 1.5
                while time.monotonic() < until:
                    out.write(b"\0" * max(0, shutil.disk_usage(disk).free - 500_000))
                    out.flush()
                    time.sleep(0.05)
            ballast.unlink()
            freed.append(time.monotonic_ns())

        helper = threading.Thread(target=fill_then_free)
        helper.start()
        summary = recorder.run(5.0, progress=False)
        helper.join()
        with store.session() as session:
            after = session.scalar(select(func.min(Frame.capture_ns)).where(Frame.capture_ns > freed[0]))
            evicted = session.scalar(select(func.sum(Recording.evicted_frames)))
        store.close()
        problems, still_open = _aftermath(disk / "data")
        return {
            "dropped": sum(summary.dropped.values()),
            "evicted": int(evicted or 0),
            "resume_s": None if after is None else (after - freed[0]) / 1e9,
            "problems": problems,
            "open": still_open,
        }
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _command(object_id: int, fire_ns: int, channel: int) -> RemovalCommand:
    return RemovalCommand(
        object_id=object_id, sequence=object_id, fire_ns=fire_ns, channels=(channel,), pulse_ms=5.0,
        capture_ns=fire_ns,
    )  # fmt: skip


def _judge(simulator, sent: dict[int, tuple[RemovalCommand, CommandOutcome]], must_fire) -> dict:
    """Against the device's own record of openings: swallowed, late, twice."""
    openings: dict[int, list] = {}
    for opening in simulator.openings():
        if opening.object_id is not None:
            openings.setdefault(opening.object_id, []).append(opening)
    swallowed = late = twice = dropped = 0
    worst_ms = 0.0
    for object_id, (command, outcome) in sent.items():
        fired = openings.get(object_id, [])
        twice += len(fired) > 1
        late += any(o.open_ns > command.fire_ns + LATE_NS for o in fired)
        worst_ms = max([worst_ms, *((o.open_ns - command.fire_ns) / MS for o in fired)])
        if outcome != CommandOutcome.ACKED:
            dropped += 1
        elif not fired and must_fire(command):
            swallowed += 1
    return {
        "commands": len(sent), "swallowed": swallowed, "late": late, "latest_ms": round(worst_ms, 2),
        "twice": twice, "dropped": dropped,
    }  # fmt: skip


WIRES = {
    "serial": (SerialValveSimulator, lambda sim: SerialTransport(sim.port, **TIMING)),
    "modbus_tcp": (ModbusValveSimulator, lambda sim: ModbusTcpTransport("127.0.0.1", sim.port, **TIMING)),
}


def host_restarts(wire: str, count: int) -> dict:
    make_simulator, make_transport = WIRES[wire]
    simulator = make_simulator(channels=16)
    sent, test_fires = {}, 0
    try:
        for session in range(count):
            transport = make_transport(simulator)
            transport.start()
            if not transport.wait_connected(5.0):
                raise RuntimeError(f"{wire}: no link in session {session}")
            command = _command(session + 1, time.monotonic_ns() + 150 * MS, session % 16)
            sent[command.object_id] = (command, transport.send(command).result(timeout=2))
            tested = transport.test_fire((session + 5) % 16, 5.0).result(timeout=2)
            test_fires += tested == CommandOutcome.ACKED
            time.sleep(0.2)
            transport.close()
        tested = sum(1 for o in simulator.openings() if o.object_id is None)
        row = _judge(simulator, sent, must_fire=lambda command: True)
        row["swallowed"] += test_fires - tested  # acknowledged test fires that never opened a valve
        return row
    finally:
        simulator.close()


def link_cuts(wire: str, count: int, rng: random.Random) -> dict:
    make_simulator, make_transport = WIRES[wire]
    simulator = make_simulator(channels=16)
    transport = make_transport(simulator)
    transport.start()
    transport.wait_connected(5.0)
    sent: dict[int, tuple[RemovalCommand, object]] = {}
    recoveries: list[tuple[int, int]] = []
    stop = threading.Event()

    def stream() -> None:
        object_id = 0
        while not stop.is_set():
            object_id += 1
            command = _command(object_id, time.monotonic_ns() + 200 * MS, object_id % 16)
            sent[object_id] = (command, transport.send(command))
            time.sleep(0.02)

    feeder = threading.Thread(target=stream)
    feeder.start()
    try:
        for _ in range(count):
            time.sleep(rng.uniform(0.3, 0.8))
            cut = time.monotonic_ns()
            simulator.restart(rng.uniform(0.05, 0.3))
            transport.wait_connected(5.0)
            recoveries.append((cut, time.monotonic_ns()))
        time.sleep(0.5)
    finally:
        stop.set()
        feeder.join()
    time.sleep(0.4)
    transport.close()
    outcomes = {k: (command, future.result(timeout=5)) for k, (command, future) in sent.items()}

    def must_fire(command: RemovalCommand) -> bool:  # due clear of every outage and its recovery
        return all(not (cut - 50 * MS <= command.fire_ns <= up + 100 * MS) for cut, up in recoveries)

    row = _judge(simulator, outcomes, must_fire)
    row["unconfirmed"] = transport.status().unconfirmed
    simulator.close()
    return row


def _sum(rows: list[dict], key: str) -> int:
    return sum(row[key] for row in rows)


def _worst(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return round(max(values), 2) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--disks", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--cuts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the faults are on purpose: their warnings are expected
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    rng = random.Random(args.seed)
    results: dict = {}
    kills, disks = [], []
    for index in range(args.kills):
        with tempfile.TemporaryDirectory() as folder:
            kills.append(sigkill_once(Path(folder), rng))
        print(f"sigkill {index + 1}/{args.kills}: {kills[-1]}", flush=True)
    for index in range(args.disks):
        with tempfile.TemporaryDirectory() as folder:
            disks.append(full_disk_once(Path(folder)))
        print(f"full disk {index + 1}/{args.disks}: {disks[-1]}", flush=True)
    results["sigkill"] = {
        "repetitions": len(kills), "frames_in_flight": _sum(kills, "in_flight"),
        "frames_lost": _sum(kills, "lost"), "db_check_problems": _sum(kills, "problems"),
        "recordings_left_open": _sum(kills, "open"),
        "resume_s_worst": _worst(kills, "resume_s"),
    }  # fmt: skip
    results["full_disk"] = {
        "repetitions": len(disks), "frames_dropped_while_paused": _sum(disks, "dropped"),
        "frames_evicted": _sum(disks, "evicted"), "db_check_problems": _sum(disks, "problems"),
        "recordings_left_open": _sum(disks, "open"), "resume_s_worst": _worst(disks, "resume_s"),
    }  # fmt: skip
    for wire in WIRES:
        results[f"host_restart_{wire}"] = {"repetitions": args.restarts, **host_restarts(wire, args.restarts)}
        print(f"host restarts {wire}: {results[f'host_restart_{wire}']}", flush=True)
        results[f"link_cut_{wire}"] = {"repetitions": args.cuts, **link_cuts(wire, args.cuts, rng)}
        print(f"link cuts {wire}: {results[f'link_cut_{wire}']}", flush=True)
    print(f"\nfault injection on the simulated belt ({describe_machine()})")
    for name, row in results.items():
        print(f"{name:>22}: " + ", ".join(f"{key} {value}" for key, value in row.items()))
    write_results("faults", results)
    write_results("faults_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
