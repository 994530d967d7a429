"""A technician's plausible mistakes, each answered in one line `beltcam: error: ...` with exit 2 and
nothing saved or sent: impossible numbers refused where they are typed (with the bridge's own
limits), a camera that never delivered a frame, a data directory that cannot be written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from calibration import ActuatorGeometry, CalibrationFile, save_calibration
from edge.capture.report import camera_reports
from edge.cli.main import main
from edge.config import load_config
from edge.store.frame_store import FrameStore

GEOMETRY = ActuatorGeometry(
    ejector_line_x_mm=1200.0, nozzle_count=24, nozzle_pitch_mm=25.0, first_nozzle_y_mm=12.5,
    valve_latency_ms=12.0, min_pulse_ms=8.0,
)  # fmt: skip


def _one_line_error(capsys, argv: list[str], *expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("beltcam: error: "), err
    for words in expected:
        assert words in err, err


@pytest.mark.parametrize("pulses", ["-5", "0"])
def test_an_impossible_encoder_is_refused_where_it_is_typed(write_config, tmp_path, capsys, pulses):
    config = write_config({"calibration_file": "calibration.yaml"})
    argv = ["calibrate", "speed", "--config", str(config), "--encoder-pulses-per-mm", pulses]
    _one_line_error(capsys, argv, "calibrate speed: argument --encoder-pulses-per-mm", "must be > 0")
    assert not (tmp_path / "calibration.yaml").exists()


def test_a_bank_the_bridge_cannot_drive_is_not_saved(write_config, tmp_path, capsys):
    config = write_config({"calibration_file": "calibration.yaml"})
    argv = ["calibrate", "actuators", "--config", str(config), "--ejector-x", "1200", "--nozzles", "100",
            "--pitch", "25", "--first-y", "12.5", "--latency-ms", "12", "--min-pulse-ms", "5"]  # fmt: skip
    _one_line_error(capsys, argv, "argument --nozzles: 100 is out of range", "<= 64")
    assert not (tmp_path / "calibration.yaml").exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["simulator", "dry-run"])
@pytest.mark.parametrize("pulse", ["0", "-5", "5000"])
def test_a_pulse_the_valves_refuse_is_never_sent(write_config, tmp_path, capsys, pulse, dry_run):
    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    config = write_config({"calibration_file": "calibration.yaml", "bridge": {"dry_run": dry_run}})
    argv = ["bridge", "test-fire", "--config", str(config), "--channel", "3", "--pulse-ms", pulse]
    _one_line_error(capsys, argv, "bridge test-fire: argument --pulse-ms", "<= 2000")


def test_a_camera_that_never_delivered_a_frame_is_an_error_not_a_stopped_camera(write_config, tmp_path):
    missing = tmp_path / "no-such-video.mp4"
    path = write_config(
        {
            "cameras": [
                {"id": "c1", "kind": "opencv", "source": str(missing), "resolution": [128, 96]},
                {"id": "c2", "kind": "simulated", "resolution": [128, 96], "fps": 20},
            ]
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "record", "--config", str(path), "--duration", "1.5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("beltcam: error: camera c1 never delivered a frame")
    written = re.search(r"c2: (\d+) frames", result.stdout)
    assert written and int(written.group(1)) > 0  # C2's frames were recorded meanwhile
    config = load_config(path)
    store = FrameStore.from_config(config.storage)
    reports = {report.camera: report for report in camera_reports(store)}
    store.close()
    assert reports["c1"].state == "unavailable" and reports["c2"].state == "stopped"
    cameras = subprocess.run(
        [sys.executable, "-m", "edge.cli", "cameras", "--config", str(path)], capture_output=True, text=True
    )
    assert cameras.returncode == 1 and "unavailable" in cameras.stdout


@pytest.fixture
def mounted(tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _remount_read_only(where) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def test_a_read_only_data_directory_is_said_in_one_line(write_config, mounted):
    (mounted / "data").mkdir()
    _remount_read_only(mounted)
    path = write_config({"storage": {"data_dir": str(mounted / "data")}})
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "record", "--config", str(path), "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "cannot write the data directory (Read-only file system)" in result.stderr


def test_a_disk_turning_read_only_while_recording_ends_cleanly_and_is_mended_later(
    write_config, monkeypatch, capsys
):
    """The filesystem turns read-only under the recorder (the kernel's errors=remount-ro): frame
    writes fail with EROFS from then on. Injected, as a real remount refuses while files are open."""
    import errno
    import os
    import threading

    import edge.store.files as files_module

    path = write_config({"storage": {"min_free_mb": 0}})
    read_only = threading.Event()
    real_open = os.open

    def open_until_read_only(file, flags, *args):
        if read_only.is_set() and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, flags, *args)

    monkeypatch.setattr(files_module.os, "open", open_until_read_only)
    threading.Timer(1.0, read_only.set).start()
    assert main(["record", "--config", str(path), "--duration", "2.5"]) == 2
    err = capsys.readouterr().err
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("beltcam: error: recording was paused when it ended: cannot write")
    assert "Read-only file system" in err and "Traceback" not in err
    read_only.clear()  # the technician fixed the disk
    assert main(["db", "check", "--config", str(path)]) == 0  # nothing half-written, nothing left open
    assert "store is clean" in capsys.readouterr().out


def _actuators(config, nozzles: str) -> list[str]:
    return ["calibrate", "actuators", "--config", str(config), "--ejector-x", "1200", "--nozzles", nozzles,
            "--pitch", "25", "--first-y", "12.5", "--latency-ms", "12", "--min-pulse-ms", "5"]  # fmt: skip


def test_a_lost_calibration_file_is_restored_and_versions_are_never_reused(write_config, tmp_path, capsys):
    from sqlalchemy import select

    from calibration import load_calibration
    from edge.store.models import Calibration

    config = write_config({"calibration_file": "calibration.yaml"})
    calibration = tmp_path / "calibration.yaml"
    assert main(_actuators(config, "24")) == 0 and main(_actuators(config, "32")) == 0
    calibration.unlink()  # lost: a wiped SD card, a bad copy
    missing = "missing, but the store keeps versions up to 2: `beltcam calibrate restore`"
    _one_line_error_code(capsys, ["calibrate", "show", "--config", str(config)], missing)
    assert main(["calibrate", "restore", "--config", str(config)]) == 0
    assert "version 2 restored, saved as version 3" in capsys.readouterr().out
    assert load_calibration(calibration).actuators.nozzle_count == 32
    assert main(["calibrate", "restore", "--config", str(config), "--version", "1"]) == 0
    restored = load_calibration(calibration)
    assert (restored.version, restored.actuators.nozzle_count) == (4, 24)
    _one_line_error_code(capsys, ["calibrate", "restore", "--config", str(config), "--version", "9"],
                         "no stored version 9 (the store keeps versions 1-4)")  # fmt: skip
    calibration.unlink()
    assert main(_actuators(config, "16")) == 0
    assert load_calibration(calibration).version == 5  # not a second version 1
    store = FrameStore.from_config(load_config(config).storage)
    with store.session() as session:
        versions = session.scalars(select(Calibration.version).order_by(Calibration.id)).all()
    store.close()
    assert versions == ["1", "2", "3", "4", "5"]


def _one_line_error_code(capsys, argv: list[str], expected: str) -> None:
    """Errors raised by a command (not by argument parsing) end in main's return code 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_small_things_a_technician_trips_over(write_config, tmp_path, capsys, caplog):
    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    path = write_config({"calibration_file": "calibration.yaml", "bridge": {"heartbeat_ms": 50}})
    # --config before the command, as other tools take it
    assert main(["--config", str(path), "db", "check"]) == 0
    out = capsys.readouterr().out
    assert f"store: {tmp_path / 'data'}" in out  # and db check says where it looked
    # the built-in simulator says it is one
    assert main(["bridge", "status", "--config", str(path)]) == 0
    assert "link to the built-in valve simulator (no real valve): connected" in capsys.readouterr().out
    # a camera's warnings name it once
    from edge.capture.cameras import build_sources
    from edge.recorder.recorder import Recorder

    gone = {"id": "c1", "kind": "opencv", "source": str(tmp_path / "gone.mp4"), "resolution": [64, 48]}
    simulated = {"id": "c2", "kind": "simulated", "resolution": [64, 48], "fps": 10}
    broken = write_config({"cameras": [gone, simulated]}, name="broken.yaml")
    config = load_config(broken)
    store = FrameStore.from_config(config.storage)
    Recorder(config, store, build_sources(config)).run(0.5, progress=False)
    store.close()
    assert "camera c1: " in caplog.text and "gone.mp4: no such video file" in caplog.text
    assert "camera c1: camera c1" not in caplog.text


HEADER = "line 1: the header must name the columns u, v, x_mm, y_mm"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("1,2,3,4\n5,6,7,8\n", f"{HEADER} (missing u, v, x_mm, y_mm"),
        ("u,v,x,y\n1,2,3,4\n", f"{HEADER} (missing x_mm, y_mm; found u, v, x, y)"),
        ("u, v, x_mm, y_mm\n1,2,3,4\n5,6,seven,8\n", "line 3: expected numbers"),
    ],
    ids=["no-header", "wrong-names", "spaces-in-header-then-a-bad-number"],
)  # fmt: skip
def test_a_survey_csv_is_judged_by_its_header_first(write_config, tmp_path, capsys, text, said):
    config = write_config({"calibration_file": "calibration.yaml"})
    (tmp_path / "points.csv").write_text(text)
    points = str(tmp_path / "points.csv")
    argv = ["calibrate", "plane", "--config", str(config), "--camera", "c1", "--points", points]
    _one_line_error_code(capsys, argv, said)


def test_the_calibration_file_keeps_each_cameras_inputs_and_names_its_site(write_config, tmp_path, capsys):
    from calibration import load_calibration
    from tests.test_cli_calibrate import _points

    config = write_config({"calibration_file": "calibration.yaml", "site_name": "line-3-pet"})
    points = _points(tmp_path)
    for camera in ("c1", "c2"):
        argv = ["calibrate", "plane", "--config", str(config), "--camera", camera, "--points", str(points)]
        assert main(argv) == 0
    saved = load_calibration(tmp_path / "calibration.yaml")
    assert sorted(i.camera for i in saved.inputs["belt_plane"]) == ["c1", "c2"]  # not only the last one
    assert saved.site == "line-3-pet"
    capsys.readouterr()
    main(["calibrate", "show", "--config", str(config), "--out", str(tmp_path / "check")])
    shown = capsys.readouterr().out
    assert "history:" in shown and "inputs:" in shown and "site: line-3-pet" in shown
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "photo.png"), np.full((96, 128, 3), 90, np.uint8))
    main(["calibrate", "show", "--config", str(config), "--frame", str(tmp_path / "photo.png")])
    warning = "photo.png is drawn on for every camera: check it is each camera's own photo"
    assert warning in capsys.readouterr().out


def test_a_test_fire_shorter_than_the_valves_open_is_refused(write_config, tmp_path, capsys):
    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    config = write_config({"calibration_file": "calibration.yaml"})
    argv = ["bridge", "test-fire", "--config", str(config), "--channel", "3", "--pulse-ms", "2"]
    _one_line_error_code(capsys, argv, "a pulse of 2 ms is shorter than the valves open (8 ms")


def test_board_mistakes_are_one_line(write_config, tmp_path, capsys, monkeypatch):
    bad_board = write_config({"simulator": {"board": {"board": "charuco:2x2:60:45"}}}, name="bad.yaml")
    too_small = "simulator.board.board: board charuco:2x2:60:45:DICT_5X5_100: needs at least 3 x 3"
    _one_line_error_code(capsys, ["db", "check", "--config", str(bad_board)], too_small)
    config = write_config()
    argv = ["calibrate", "board", "--config", str(config), "--board", "chessboard:9x6:25", "--out", "b.txt"]
    _one_line_error_code(capsys, argv, "b.txt: the board is written as .pdf or .png")
    # printing a board needs no site file at all (here: none exists in the working folder)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    assert main(["calibrate", "board", "--board", "chessboard:9x6:25", "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").stat().st_size > 0


def test_test_fires_are_on_record_like_every_command(write_config, tmp_path, capsys):
    from sqlalchemy import select

    from edge.store.models import RemovalCommand as RemovalCommandRow

    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    live = write_config({"calibration_file": "calibration.yaml", "bridge": {"heartbeat_ms": 50}})
    dry = write_config({"calibration_file": "calibration.yaml", "bridge": {"dry_run": True}}, name="dry.yaml")
    assert main(["bridge", "test-fire", "--config", str(live), "--channel", "5", "--pulse-ms", "30"]) == 0
    assert main(["bridge", "test-fire", "--config", str(dry), "--channel", "6"]) == 0
    store = FrameStore.from_config(load_config(live).storage)
    with store.session() as session:
        logged = session.scalars(select(RemovalCommandRow)).all()
        rows = [(r.channels, r.pulse_ms, r.status, r.detail) for r in logged]
    store.close()
    test_fire = {"kind": "test_fire", "by": "beltcam bridge test-fire"}
    assert rows == [([5], 30.0, "acked", test_fire), ([6], 20.0, "dry_run", test_fire)]


def test_an_encoder_site_is_told_how_to_run_live():
    """The agent reads no encoder: a site calibrated by its encoder alone is told to add a clip's
    speed (the live path follows the belt from there), and runs once it has."""
    from calibration.calibration_file import BeltSection
    from edge.config import CameraConfig, SimulatorConfig
    from edge.live.site_check import live_geometry_problem
    from edge.simulator.calibration_truth import simulator_calibration

    cameras = [CameraConfig(id=c, kind="simulated", resolution=(128, 96), fps=10.0) for c in ("c1", "c2")]
    site = simulator_calibration(SimulatorConfig(), cameras)
    encoder_only = site.model_copy(
        update={"belt": BeltSection(speed_source="encoder", encoder_pulses_per_mm=4.0)}
    )
    problem = live_geometry_problem(encoder_only)
    assert "encoder, which the live path cannot read" in problem and "beltcam calibrate speed" in problem
    with_clip = site.model_copy(
        update={"belt": BeltSection(speed_source="clip", speed_mm_s=250.0, encoder_pulses_per_mm=4.0)}
    )
    assert live_geometry_problem(with_clip) is None


def test_the_encoder_step_says_a_clip_is_still_needed_and_keeps_a_clips_speed(write_config, tmp_path, capsys):
    from calibration import load_calibration
    from calibration.calibration_file import BeltSection

    path = tmp_path / "calibration.yaml"
    config = write_config({"calibration_file": path.name})
    encoder = ["calibrate", "speed", "--config", str(config), "--encoder-pulses-per-mm", "4"]
    assert main(encoder) == 0
    said = capsys.readouterr().out
    assert "cannot read the encoder: also run `beltcam calibrate speed` on a clip" in said
    belt = load_calibration(path).belt
    assert (belt.speed_source, belt.speed_mm_s, belt.encoder_pulses_per_mm) == ("encoder", None, 4.0)
    save_calibration(CalibrationFile(belt=BeltSection(speed_mm_s=250.0)), path, "belt_speed")  # a clip's
    assert main(encoder) == 0
    assert "keeps the clip's belt speed, 250.0 mm/s" in capsys.readouterr().out
    belt = load_calibration(path).belt
    assert (belt.speed_source, belt.speed_mm_s, belt.encoder_pulses_per_mm) == ("clip", 250.0, 4.0)
