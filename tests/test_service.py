"""`beltcam service`: the systemd unit passes `systemd-analyze verify`, is written where asked, and
`service status` reports the agent's own health; log lines carry their level for the journal."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from edge.cli.main import main


def test_the_unit_is_what_systemd_accepts(write_config, tmp_path, capsys):
    config = write_config({})
    assert main(["service", "install", "--dry-run", "--config", str(config), "--watchdog-s", "20"]) == 0
    unit = capsys.readouterr().out
    expected = (
        "Type=notify",
        "WatchdogSec=20",
        "Restart=on-failure",
        "StartLimitBurst=5",
        "After=network-online.target",
        f"run --config {config}",
        "SyslogLevelPrefix=true",
    )
    for line in expected:
        assert line in unit, line
    path = tmp_path / "beltcam.service"
    path.write_text(unit)
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    verified = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert "beltcam.service" not in verified.stderr  # no warning about our unit


def test_install_writes_the_unit_and_status_says_the_agent_is_down(write_config, tmp_path, capsys):
    config = write_config({})
    for flags, said in ((["--memory-max", "lots"], "--memory-max 'lots': a size such as 6G"),
                        (["--user", "nobody-here"], "--user nobody-here: no such user")):  # fmt: skip
        assert main(["service", "install", "--dry-run", "--config", str(config), *flags]) == 2
        assert said in capsys.readouterr().err
    units = tmp_path / "units"
    units.mkdir()
    assert main(["service", "install", "--config", str(config), "--unit-dir", str(units), "--no-enable"]) == 0
    assert "ExecStart=" in (units / "beltcam.service").read_text()
    capsys.readouterr()
    assert main(["service", "status", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "agent: not running" in out and "service:" in out


def test_log_lines_carry_their_syslog_level_under_the_journal(write_config):
    config = write_config({})
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "-v", "cameras", "--config", str(config)],
        capture_output=True, text=True, env={**os.environ, "JOURNAL_STREAM": "8:1234"},
    )  # fmt: skip
    assert any(line.startswith("<6>INFO ") for line in done.stderr.splitlines()), done.stderr


def test_the_agent_says_ready_pings_the_watchdog_and_stops_pinging_while_its_live_path_hangs(
    write_config, tmp_path, live_model_file, monkeypatch
):
    from edge.config import load_config
    from edge.live.segmenter import LiveSegmenter
    from edge.store.frame_store import FrameStore
    from edge.store.registry import add_model, promote
    from tests.conftest import simulated_cameras

    config = write_config({"cameras": simulated_cameras(fps=10.0), "calibration_file": "calibration.yaml"})
    store = FrameStore.from_config(load_config(config).storage)
    promote(store, add_model(store, live_model_file))
    store.close()
    heard: list[tuple[float, str]] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(0.2)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                heard.append((time.monotonic(), listener.recv(4096).decode()))
            except TimeoutError:
                continue

    hang = {"calls": 0, "at": None}
    segment = LiveSegmenter.segment

    def hanging_segment(self, image, capture_ns):
        hang["calls"] += 1
        if hang["calls"] == 40:  # a model that gets stuck for a while, as a driver fault would
            hang["at"] = time.monotonic()
            time.sleep(HANG_S)
        return segment(self, image, capture_ns)

    monkeypatch.setattr(LiveSegmenter, "segment", hanging_segment)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        assert main(["run", "--config", str(config), "--duration", "14"]) == 0
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert heard and heard[0][1].startswith("READY=1\nSTATUS=recording")
    pings = [when for when, message in heard if message.startswith("WATCHDOG=1")]
    assert hang["at"] is not None and len(pings) >= 4
    before = [when for when in pings if when < hang["at"]]
    during = [when for when in pings if hang["at"] + 1.0 < when < hang["at"] + HANG_S - 0.2]
    after = [when for when in pings if when > hang["at"] + HANG_S + 0.5]
    assert before and after and during == []  # silent while the live path hung, back after
    assert heard[-1][1] == "STOPPING=1"


HANG_S = 4.0
