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


USB_SITE = {
    "cameras": [
        {"id": "c1", "kind": "opencv", "source": "0"},
        {
            "id": "c2",
            "kind": "gstreamer",
            "source": "v4l2src device=/dev/v4l/by-id/usb-cam_2-video ! videoconvert",
        },
    ],
    "bridge": {"transport": "serial", "serial_port": "/dev/ttyUSB0"},
}


def test_the_unit_starts_after_the_sites_usb_cameras_and_serial_link(write_config, tmp_path, capsys):
    config = write_config(USB_SITE)
    assert main(["service", "install", "--dry-run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    units = ["dev-video0.device", "dev-v4l-by\\x2did-usb\\x2dcam_2\\x2dvideo.device", "dev-ttyUSB0.device"]
    escaped = subprocess.run(
        ["systemd-escape", "--path", "--suffix=device", "/dev/video0", "/dev/v4l/by-id/usb-cam_2-video",
         "//dev/ttyUSB0/"], capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert escaped == units  # the names systemd gives these devices
    assert f"Wants={' '.join(units)}" in out and f"After=network-online.target {' '.join(units)}" in out
    assert 'SUBSYSTEM=="video4linux", TAG+="systemd"' in out  # V4L2 devices get device units by the rule
    unit = tmp_path / "beltcam.service"
    unit.write_text(out[: out.index("\n# and ")])
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0 and "beltcam.service" not in verified.stderr, verified.stderr
    rules = tmp_path / "rules"
    rules.mkdir()
    install = ["service", "install", "--config", str(config), "--unit-dir", str(tmp_path), "--no-enable"]
    assert main([*install, "--udev-dir", str(rules)]) == 0
    assert (rules / "70-beltcam-cameras.rules").read_text().endswith('TAG+="systemd"\n')
    capsys.readouterr()
    (tmp_path / "site 2%").mkdir()  # a space and a specifier character in the path
    pipeline = {"id": "c1", "kind": "opencv", "source": "v4l2src device='/dev/video4' ! appsink"}
    odd = write_config(
        {**USB_SITE, "cameras": [pipeline, USB_SITE["cameras"][1]]}, name="site 2%/beltcam.yaml"
    )
    assert main(["service", "install", "--dry-run", "--config", str(odd)]) == 0
    out = capsys.readouterr().out
    assert (
        f'run --config "{str(odd).replace("%", "%%")}"' in out and "dev-video4.device" in out
    )  # OpenCV pipeline
    unit.write_text(out[: out.index("\n# and ")])
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0 and "beltcam.service" not in verified.stderr, verified.stderr
    network_only = write_config({}, name="simulated.yaml")  # simulated cameras: no device to wait for
    assert main(["service", "install", "--dry-run", "--config", str(network_only)]) == 0
    out = capsys.readouterr().out
    assert ".device" not in out and "udev" not in out


def test_install_writes_the_unit_and_status_says_the_agent_is_down(write_config, tmp_path, capsys):
    config = write_config({})
    for flags, said in ((["--memory-max", "lots"], "--memory-max 'lots': a size such as 6G"),
                        (["--user", "nobody-here"], "--user nobody-here: no such user")):  # fmt: skip
        assert main(["service", "install", "--dry-run", "--config", str(config), *flags]) == 2
        assert said in capsys.readouterr().err
    nowhere = str(tmp_path / "nowhere")
    for flags, said in ((["--memory-max", "150%"], "(at most 100%)"),
                        (["--unit-dir", nowhere], f"--unit-dir {nowhere}: no such folder")):  # fmt: skip
        assert main(["service", "install", "--config", str(config), *flags]) == 2
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

    def listen() -> None:  # until told to stop and nothing is left to read
        while True:
            try:
                heard.append((time.monotonic(), listener.recv(4096).decode()))
            except TimeoutError:
                if stop.is_set():
                    return

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
