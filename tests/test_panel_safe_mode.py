"""Safe mode: `beltcam panel`/`run` with an invalid site file serve a minimal panel (a real waitress
server) that shows the error, refuses edits without the key printed at start or without CSRF,
saves a fixed file atomically with a backup, and then the command goes on with it; a file fixed on
the machine works too, and Ctrl-C ends it with the usual one-line error. Plus the Settings page and
the safe-mode page in a real browser."""

from __future__ import annotations

import html
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from edge.cli.main import main
from edge.config import PanelConfig, load_config
from edge.panel.safe_mode import SafeModeState, create_safe_app, lenient_panel_settings
from edge.panel.server import PanelServer
from tests.panel_helpers import browser_login, csrf_token

SECRET_URL = "rtsp://operator:hunter2secret@10.0.0.7/stream"
KEY_LINE = re.compile(r"safe mode: fix it at (http://\S+) with the key (\S+)")
WAIT_S = 60.0  # a bound for every wait on a command (a loaded 2-core machine starts Python slowly)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Command:
    """`python -m edge.cli ...` with its output read line by line on a thread, so every wait is bounded."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern | str, timeout: float = WAIT_S) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(
            f"no line matching {pattern!r} within {timeout} s; output:\n" + "\n".join(self.seen)
        )

    def ended(self, timeout: float = WAIT_S) -> int:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def command():
    started: list[Command] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Command:
        started.append(Command(*args, env=env))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def _broken_site(write_config, port: int, **extra) -> Path:
    cameras = [{"id": "c1", "kind": "simulated", "source": SECRET_URL}, {"id": "c2", "kind": "simulated"}]
    return write_config(
        {"cameras": cameras, "panel": {"port": port}, "recorder": {"queue_size": -1}, **extra}
    )


def _form(session: requests.Session, url: str) -> tuple[str, dict[str, str]]:
    page = session.get(url)
    assert page.status_code == 200
    text = re.search(r'<textarea id="site-file" name="text"[^>]*>(.*?)</textarea>', page.text, re.S).group(1)
    sha = re.search(r'name="sha" value="([0-9a-f]*)"', page.text).group(1)
    return page.text, {"csrf_token": csrf_token(page.text), "sha": sha, "text": html.unescape(text)}


def test_the_safe_mode_panel_takes_a_fix_with_its_key_then_the_panel_starts(write_config, command, tmp_path):
    port = _free_port()
    path = _broken_site(write_config, port)
    broken = path.read_bytes()
    beltcam = command("panel", "--config", str(path))
    url, key = beltcam.wait_for(KEY_LINE).groups()
    assert url == f"http://127.0.0.1:{port}/"  # where the file's panel section says
    http = requests.Session()
    page, fields = _form(http, url)
    assert "recorder.queue_size: Input should be greater than or equal to 1" in page
    assert "hunter2secret" not in page and "rtsp://operator:***@10.0.0.7/stream" in fields["text"]
    fixed = fields["text"].replace("queue_size: -1", "queue_size: 32")
    for refused, code in (
        ({**fields, "text": fixed}, 403),  # no key
        ({**fields, "text": fixed, "key": "guessed"}, 403),
        ({"text": fixed, "key": key, "sha": fields["sha"]}, 400),  # no CSRF token
        ({**fields, "text": fixed.replace("queue_size: 32", "queue_size: 0"), "key": key}, 422),
    ):
        answer = http.post(url, data=refused)
        assert answer.status_code == code, answer.text
    assert "recorder.queue_size: Input should be greater than or equal to 1" in answer.text
    assert path.read_bytes() == broken  # nothing refused was written
    saved = http.post(url, data={**fields, "text": fixed, "key": key})
    assert saved.status_code == 200 and "is valid now" in saved.text
    config = load_config(path)  # the fixed file, with the password it had
    assert config.recorder.queue_size == 32 and config.camera("c1").source == SECRET_URL
    assert path.with_name(path.name + ".bak").read_bytes() == broken
    beltcam.wait_for(rf"panel at http://127\.0\.0\.1:{port}/")  # the command went on, on the same address
    assert requests.get(url + "login", timeout=10).status_code == 200
    beltcam.process.send_signal(signal.SIGTERM)
    assert beltcam.ended() == 0


def test_a_file_fixed_on_the_machine_lets_the_agent_start(write_config, command, tmp_path):
    path = _broken_site(write_config, 0, calibration_file="calibration.yaml")
    agent = command("run", "--config", str(path), "--duration", "8")  # bounds the wait, then the agent
    agent.wait_for(r"beltcam: the site file is invalid: .*recorder\.queue_size")
    agent.wait_for(KEY_LINE)
    path.write_text(path.read_text().replace("queue_size: -1", "queue_size: 160"))
    agent.wait_for(r"safe mode: .* is valid now: the agent starts with it now", timeout=20)
    agent.wait_for(r"^recorded \d")
    assert agent.ended() == 0


def test_stopping_safe_mode_ends_in_the_one_line_error(write_config, command, tmp_path):
    path = _broken_site(write_config, 0)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as the unit of `beltcam service` has
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(WAIT_S)
    beltcam = command("panel", "--config", str(path), env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    url = beltcam.wait_for(KEY_LINE).group(1)
    told = systemd.recv(4096).decode()
    systemd.close()
    assert told == f"READY=1\nSTATUS=safe mode: the site file is invalid, fix it at {url}"  # alive
    beltcam.process.send_signal(signal.SIGTERM)
    assert beltcam.ended() == 2
    assert any(line.startswith(f"beltcam: error: {path}: recorder.queue_size") for line in beltcam.seen)
    bounded = command("run", "--config", str(path), "--duration", "60")  # stopped long before its end
    bounded.wait_for(KEY_LINE)
    bounded.process.send_signal(signal.SIGTERM)
    assert bounded.ended() == 2
    assert not any("is over" in line for line in bounded.seen)  # SIGTERM ended it, not --duration


def test_a_bounded_run_stays_bounded_in_safe_mode(write_config, command):
    """`run --duration S` with a file nobody fixes ends after S seconds in the one-line error."""
    path = _broken_site(write_config, 0)
    beltcam = command("run", "--config", str(path), "--duration", "2")
    beltcam.wait_for(KEY_LINE)
    started = time.monotonic()
    assert beltcam.ended() == 2
    assert time.monotonic() - started < 10
    assert any(
        re.match(r"safe mode: --duration 2 s is over and .* is still invalid", line) for line in beltcam.seen
    )
    assert any(line.startswith(f"beltcam: error: {path}: recorder.queue_size") for line in beltcam.seen)


def test_no_safe_mode_where_it_is_not_wanted(write_config, tmp_path, capsys):
    path = _broken_site(write_config, 0)
    assert main(["panel", "--config", str(path), "--no-safe-mode"]) == 2
    assert "recorder.queue_size" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2  # not there: no file to fix
    assert "config file not found" in capsys.readouterr().err
    quiet = _broken_site(write_config, 0)
    quiet.write_text(quiet.read_text().replace("port: 0", "port: 0\n  enabled: false"))
    assert main(["run", "--config", str(quiet)]) == 2  # a site without a panel gets no safe-mode panel
    assert "recorder.queue_size" in capsys.readouterr().err


def test_the_panel_section_is_read_leniently():
    assert lenient_panel_settings("panel: {host: 0.0.0.0, port: 9001}\ncameras: 7\n").port == 9001
    partly = lenient_panel_settings("panel:\n  host: 127.0.0.2\n  port: not a port\n  threads: 1\n")
    assert (partly.host, partly.port, partly.threads) == (
        "127.0.0.2",
        PanelConfig().port,
        PanelConfig().threads,
    )
    assert lenient_panel_settings("panel: [1, 2\n") == PanelConfig()  # not even YAML
    assert lenient_panel_settings("panel: 5\n") == PanelConfig()


def test_settings_and_safe_mode_pages_in_a_browser(panel_site, browser_page, write_config, tmp_path):
    site = panel_site()
    page = browser_page
    browser_login(page, site)
    page.goto(site.url + "settings")
    page.click("#s-live > summary")
    page.fill("#f-live-min_hits", "4")
    page.click("#review")
    page.wait_for_selector("#diff")
    assert "+  min_hits: 4" in page.inner_text("#diff")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert load_config(site.config_path).live.min_hits == 4
    assert page.problems == []

    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({"cameras": "two of them", "panel": {"port": 0}}))
    state = SafeModeState(path, "broken.yaml: cameras: Input should be a valid list")
    server = PanelServer(create_safe_app(state), PanelConfig(port=0), name="safe-mode panel")
    server.start()
    try:
        page.goto(server.url)
        assert page.inner_text("#error") == "broken.yaml: cameras: Input should be a valid list"
        page.fill("#site-file", path.read_text().replace("two of them", yaml.safe_dump(
            [{"id": "c1", "kind": "simulated"}, {"id": "c2", "kind": "simulated"}], default_flow_style=True
        ).strip()))  # fmt: skip
        page.fill("input[name=key]", state.key)
        page.click("#save")
        page.wait_for_selector("#saved")
        assert state.fixed.is_set() and load_config(path).camera("c2").kind == "simulated"
    finally:
        server.close()
    assert page.problems == []


def test_guessing_the_key_is_limited(tmp_path):
    path = tmp_path / "beltcam.yaml"
    path.write_text("cameras: 7\n")
    state = SafeModeState(path, f"{path}: cameras: Input should be a valid list")
    client = create_safe_app(state).test_client()
    token = csrf_token(client.get("/").text)
    answers = [
        client.post("/", data={"csrf_token": token, "text": "x", "key": f"k{n}"}).status_code
        for n in range(11)
    ]
    assert answers == [403] * 10 + [429]
    assert client.post("/", data={"csrf_token": token, "text": "x", "key": state.key}).status_code == 429
    assert path.read_text() == "cameras: 7\n" and not state.fixed.is_set()
