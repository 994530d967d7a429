import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
        }
    )
    result = beltcam("record", "--config", str(path), "--duration", "20")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert f"recording into {data}" in result.stdout
    assert len(re.findall(r"c[12]: \d+ frames, 0 dropped, 0 errors", result.stdout)) == 2
    truth = yaml.safe_load((data / "simulator_calibration.yaml").read_text())
    assert truth["cameras"]["c1"]["mm_per_px"] == pytest.approx(600 / 480)
    frames = list((data / "frames").rglob("*.jpg"))
    assert len(frames) >= 2 * 10 * 18
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
