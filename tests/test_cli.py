import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from calibration import load_calibration
from calibration.calibration_file import BeltSection, CalibrationFile, save_calibration
from edge.cli.main import main
from edge.config import load_config
from edge.nightly.manifests import build_manifest
from edge.store.frame_store import FrameStore
from edge.store.models import Calibration
from tests.conftest import simulated_cameras

BELTCAM = [sys.executable, "-m", "edge.cli"]
SUBCOMMANDS = ["demo", "record", "import", "db"]


def beltcam(*args, timeout=120):
    return subprocess.run([*BELTCAM, *args], capture_output=True, text=True, timeout=timeout)


def test_console_script_is_installed_beside_python():
    script = Path(sys.executable).with_name("beltcam")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in SUBCOMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", [["demo"], ["record"], ["import"], ["db", "check"], ["db", "upgrade"]])
def test_every_subcommand_has_help(command):
    result = beltcam(*command, "--help")
    assert result.returncode == 0
    assert "--config" in result.stdout


def test_bad_config_ends_in_one_line_and_exit_2(write_config):
    path = write_config({"recorder": {"queue_size": -1}})
    result = beltcam("record", "--config", str(path), "--duration", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"beltcam: error: {path}: recorder.queue_size: Input should be greater than or equal to 1"
    ]
    missing = beltcam("db", "check", "--config", "/nonexistent/beltcam.yaml")
    assert missing.returncode == 2
    assert "config file not found" in missing.stderr and "Traceback" not in missing.stderr


def test_record_20_seconds_then_db_check_is_clean(write_config, tmp_path):
    path = write_config(
        {
            "cameras": simulated_cameras(640, 480, 10),
            "simulator": {"truth_every": 10},
            "calibration_file": "calibration.yaml",
        }
    )
    result = beltcam("record", "--config", str(path), "--duration", "20")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert f"recording into {data}" in result.stdout
    delivered = [int(n) for n in re.findall(r"c[12]: (\d+) frames, 0 dropped, 0 errors", result.stdout)]
    assert len(delivered) == 2
    calibration = load_calibration(tmp_path / "calibration.yaml")  # the simulated site is calibrated
    assert calibration.camera("c1").belt_plane.pixel_to_belt[0][0] == pytest.approx(600 / 480)
    frames = list((data / "frames").rglob("*.jpg"))
    # every frame the cameras gave is on disk; how many they give is the simulator's pace, which a
    # loaded machine slows (it renders 640x480 at 10 fps), so it is only held to most of real time
    assert len(frames) == sum(delivered) >= 2 * 10 * 14
    check = beltcam("db", "check", "--config", str(path))
    assert check.returncode == 0, check.stdout
    assert check.stdout.strip().endswith("store is clean")
    assert f"indexed frames: {len(frames)}" in check.stdout


def test_import_rejection_is_one_line(write_config, tmp_path):
    path = write_config()
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg")
    result = beltcam("import", "--config", str(path), "--camera", "c1", "--label", "before", str(folder))
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"beltcam: error: {folder / 'a.jpg'}: not a readable image (corrupt or unsupported format)"
    )


SIMULATED = {"belt_speed_mm_s": 300, "c1_to_c2_mm": 800, "c2_clock_offset_ms": 25}


def _record(config, capsys) -> str:
    assert main(["record", "--config", str(config), "--duration", "0.6"]) == 0
    return capsys.readouterr().out


def _stored_versions(config) -> list[str]:
    store = FrameStore.from_config(load_config(config).storage)
    with store.session() as session:
        versions = session.scalars(select(Calibration.version).order_by(Calibration.id)).all()
    store.close()
    return versions


def test_record_calibrates_a_simulated_site_out_of_the_box(write_config, tmp_path, capsys):
    config = write_config({"simulator": SIMULATED, "calibration_file": "calibration.yaml"})
    path = tmp_path / "calibration.yaml"
    out = _record(config, capsys)
    assert f"calibration: the simulated installation's own calibration saved as {path} (version 1)" in out
    assert not (tmp_path / "data" / "simulator_calibration.yaml").exists()  # the ad-hoc file is gone
    calibration = load_calibration(path)
    assert [entry.step for entry in calibration.history] == ["simulator"]
    assert calibration.belt.speed_mm_s == 300 and calibration.belt.speed_source == "simulator"
    assert (calibration.offsets.c1_to_c2_mm, calibration.offsets.c2_clock_offset_ms) == (800, 25)
    assert calibration.offsets.clock_source == "simulator"
    scale = 600 / 96  # belt width over image height
    for camera in ("c1", "c2"):  # each camera's own belt coordinates, as a board there would give
        plane = calibration.camera(camera).belt_plane
        assert np.array(plane.pixel_to_belt) == pytest.approx(np.diag([scale, scale, 1.0]))
        assert plane.method == "simulator" and plane.fit_rms_mm == plane.holdout_max_mm == 0
        assert calibration.camera(camera).intrinsics is None
    assert calibration.site == "beltcam"  # and the simulated nozzle bank, 400 mm past C1's view
    assert (calibration.actuators.ejector_line_x_mm, calibration.actuators.nozzle_count) == (1200, 24)
    assert _stored_versions(config) == ["1"]  # kept in the store like a technician's version
    # belt-flow training takes the belt's motion from it
    store = FrameStore.from_config(load_config(config).storage)
    manifest, _ = build_manifest(store, tmp_path / "manifest.json", path)
    store.close()
    for sequence in manifest.sequences:
        assert sequence.belt_velocity_px_s == pytest.approx((300 / scale, 0.0))

    # unchanged settings: left as it is; a changed belt speed: the simulator's file is rewritten
    assert f"calibration: {path} (version 1) is the simulator's, up to date" in _record(config, capsys)
    faster = write_config({"simulator": {**SIMULATED, "belt_speed_mm_s": 350}, "calibration_file": path.name})
    assert f"saved as {path} (version 2)" in _record(faster, capsys)
    rewritten = load_calibration(path)
    assert rewritten.belt.speed_mm_s == 350 and rewritten.offsets.c1_to_c2_mm == 800
    assert [entry.step for entry in rewritten.history] == ["simulator", "simulator"]
    assert _stored_versions(config) == ["1", "2"]


def test_a_technicians_calibration_is_never_overwritten_by_the_simulator(write_config, tmp_path, capsys):
    path = tmp_path / "calibration.yaml"
    save_calibration(CalibrationFile(belt=BeltSection(speed_mm_s=123.0)), path, "belt_speed")
    before = path.read_bytes()
    config = write_config({"simulator": SIMULATED, "calibration_file": path.name})
    out = _record(config, capsys)
    assert f"calibration: {path} (version 1) is the site's own calibration: kept" in out
    assert path.read_bytes() == before and _stored_versions(config) == []


def test_calibrate_steps_work_on_the_simulators_file_and_make_it_the_sites_own(
    write_config, tmp_path, capsys
):
    from tests.test_cli_calibrate import _points

    config = write_config({"simulator": SIMULATED, "calibration_file": "calibration.yaml"})
    path = tmp_path / "calibration.yaml"
    _record(config, capsys)
    site = ["--config", str(config)]
    points = ["calibrate", "plane", *site, "--camera", "c1", "--points", str(_points(tmp_path))]
    assert main(points) == 0
    # C2's belt plane is the simulator's: the speed step measures with it straight away
    assert main(["calibrate", "speed", *site, "--camera", "c2"]) == 0
    nozzles = ["calibrate", "actuators", *site, "--ejector-x", "1200", "--nozzles", "24",
               "--pitch", "25", "--first-y", "12.5", "--latency-ms", "12", "--min-pulse-ms", "5"]  # fmt: skip
    assert main(nozzles) == 0
    calibration = load_calibration(path)
    steps = [entry.step for entry in calibration.history]
    assert steps == ["simulator", "belt_plane", "belt_speed", "actuators"]
    assert calibration.camera("c1").belt_plane.method == "points"  # replaced, c2's is the simulator's
    assert calibration.camera("c2").belt_plane.method == "simulator"
    assert calibration.belt.speed_source == "clip"
    assert calibration.belt.speed_mm_s == pytest.approx(300, rel=0.03)  # measured, with the belt's wobble
    assert calibration.offsets.clock_source == "simulator" and calibration.actuators.nozzle_count == 24
    assert _stored_versions(config) == ["1", "2", "3", "4"]
    capsys.readouterr()
    # the simulator's settings change, but the file is the site's own now
    slower = write_config({"simulator": {**SIMULATED, "belt_speed_mm_s": 200}, "calibration_file": path.name})
    before = path.read_bytes()
    assert "is the site's own calibration: kept" in _record(slower, capsys)
    assert path.read_bytes() == before
    # the simulator's version is in the store: a technician can go back to it
    assert main(["calibrate", "restore", *site, "--version", "1"]) == 0
    restored = load_calibration(path)
    assert restored.version == 5 and restored.camera("c1").belt_plane.method == "simulator"
    assert "kept" in _record(slower, capsys)  # a restore is a technician's step too


def test_a_site_without_calibration_file_gets_none(write_config, tmp_path, capsys):
    config = write_config({"simulator": SIMULATED})
    out = _record(config, capsys)
    assert not [line for line in out.splitlines() if line.startswith("calibration")]
    assert not list(tmp_path.rglob("*calibration*.yaml"))
