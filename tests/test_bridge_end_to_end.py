"""The bridge end to end on the simulated belt: a perfect tracker feeds the planner, commands travel
over real Modbus TCP to the reference PLC, and every valve opening is judged against ground truth.
Also the technician's `beltcam bridge` commands and the command log."""

from __future__ import annotations

import time

from sqlalchemy import select

from calibration import ActuatorGeometry, save_calibration
from calibration.calibration_file import CalibrationFile
from edge.actuators.link import nozzle_bank, open_transport
from edge.cli.main import main
from edge.config import SimulatorConfig, load_config
from edge.simulator.judge import judge_openings, perfect_tracking, summarize
from edge.simulator.world import BeltWorld
from edge.store.command_log import CommandLog
from edge.store.frame_store import FrameStore
from edge.store.models import RemovalCommand as RemovalCommandRow
from firmware_bridge.planner import EjectionPlanner

GEOMETRY = ActuatorGeometry(
    ejector_line_x_mm=1100.0, nozzle_count=24, nozzle_pitch_mm=25.0, first_nozzle_y_mm=12.5,
    valve_latency_ms=12.0, min_pulse_ms=8.0,
)  # fmt: skip


def _site(write_config, tmp_path, **bridge):
    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    return write_config({"calibration_file": "calibration.yaml", "bridge": {"heartbeat_ms": 50, **bridge}})


def test_perfect_tracking_hits_the_illegal_objects(write_config, tmp_path):
    config = load_config(_site(write_config, tmp_path))
    world = BeltWorld(SimulatorConfig(seed=11, belt_speed_mm_s=1000.0, objects_per_m=3.0))
    bank = nozzle_bank(config.calibration_file)
    store = FrameStore.from_config(config.storage)
    log = CommandLog(store)
    with open_transport(config) as link:
        transport = link.transport
        assert transport.wait_connected(3.0)
        epoch_ns = time.monotonic_ns()
        planner = EjectionPlanner(bank, lead_ms=config.bridge.lead_ms)
        planned_illegal = set()
        while (now_s := (time.monotonic_ns() - epoch_ns) / 1e9) < 2.5:
            if now_s < 1.2:  # C1 sees the belt from 0 to 800 mm, a frame every 40 ms
                for obj in perfect_tracking(world, (0.0, 800.0), now_s, epoch_ns):
                    if planner.plan(obj) is not None:
                        planned_illegal.add(obj.object_id)
            for command in planner.due():
                log.record(command, transport.send(command))
            time.sleep(0.04)
        time.sleep(0.3)
        judgements = judge_openings(link.simulator.openings(), bank, world, epoch_ns)
    log.close()
    verdicts = summarize(judgements)
    hit = {object_id % 2**32 for j in judgements if j.verdict != "nothing" for object_id in j.hit_ids}
    assert len(planned_illegal) >= 3
    assert planned_illegal <= hit  # every illegal object that was planned was hit
    assert verdicts.get("nothing", 0) <= 0.1 * len(judgements)
    with store.session() as session:
        statuses = session.scalars(select(RemovalCommandRow.status)).all()
    store.close()
    assert statuses and set(statuses) == {"acked"}


def test_test_fire_status_and_dry_run_through_the_cli(write_config, tmp_path, capsys):
    config = _site(write_config, tmp_path)
    assert main(["bridge", "test-fire", "--config", str(config), "--channel", "5", "--pulse-ms", "30"]) == 0
    out = capsys.readouterr().out
    assert "channel 5 opened for 30 ms" in out
    assert main(["bridge", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "connected" in out and "24 nozzles" in out
    dry = _site(write_config, tmp_path, dry_run=True)
    assert main(["bridge", "test-fire", "--config", str(dry), "--channel", "5"]) == 0
    assert "dry run: no valve opened" in capsys.readouterr().out
    assert main(["bridge", "test-fire", "--config", str(config), "--channel", "30"]) == 2
    assert "channel 30 is not on the bank (24 nozzles: 0..23)" in capsys.readouterr().err


def test_dry_run_plans_and_logs_every_command_without_air(write_config, tmp_path):
    config = load_config(_site(write_config, tmp_path, dry_run=True))
    world = BeltWorld(SimulatorConfig(seed=12, belt_speed_mm_s=1000.0, objects_per_m=3.0))
    store = FrameStore.from_config(config.storage)
    log = CommandLog(store)
    planner = EjectionPlanner(nozzle_bank(config.calibration_file), lead_ms=5000.0)
    with open_transport(config) as link:
        transport = link.transport
        epoch_ns = time.monotonic_ns()
        for frame in range(12):  # a second of belt, seen every 0.1 s
            for obj in perfect_tracking(world, (0.0, 800.0), frame / 10, epoch_ns):
                planner.plan(obj)
        released = planner.due()
        for command in released:
            log.record(command, transport.send(command))
        assert link.simulator is None and transport.would_fire == released
    log.close()
    with store.session() as session:
        statuses = session.scalars(select(RemovalCommandRow.status)).all()
    store.close()
    assert len(released) >= 1 and statuses == ["dry_run"] * len(released)
