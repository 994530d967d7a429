"""Fixtures for the panel's tests: a site with users, the panel served by its real server (waitress)
on a free loopback port, HTTP sessions that log in, and Debian's headless Chromium driven by
Playwright (`executable_path`, never `playwright install`)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from calibration import ActuatorGeometry, save_calibration
from calibration.calibration_file import CalibrationFile
from edge.capture.live_view import LiveView
from edge.config import load_config
from edge.panel.app import create_app
from edge.panel.context import PanelContext
from edge.panel.server import PanelServer
from edge.store.command_log import CommandLog
from edge.store.frame_store import FrameStore
from edge.store.users import add_user

PASSWORD = "a long test password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GEOMETRY = ActuatorGeometry(
    ejector_line_x_mm=1100.0, nozzle_count=24, nozzle_pitch_mm=25.0, first_nozzle_y_mm=12.5,
    valve_latency_ms=12.0, min_pulse_ms=8.0,
)  # fmt: skip


@dataclass
class PanelSite:
    url: str
    store: FrameStore
    context: PanelContext
    server: PanelServer
    config_path: Path

    def session(self, name: str = "tech") -> requests.Session:
        """An HTTP session logged in as `name` (tech: technician, viewer: viewer)."""
        http = requests.Session()
        login(http, self.url, name, PASSWORD)
        return http


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(http: requests.Session, url: str, name: str, password: str) -> requests.Response:
    token = csrf_token(http.get(url + "login").text)
    return http.post(url + "login", data={"name": name, "password": password, "csrf_token": token})


@pytest.fixture
def panel_site(write_config, tmp_path) -> Iterator[Callable[..., PanelSite]]:
    """Start a panel: `panel_site(overrides, view=..., transport=...)`; users tech and viewer exist."""
    started: list[tuple[PanelSite, CommandLog | None]] = []

    def start(overrides: dict | None = None, view: LiveView | None = None, transport=None) -> PanelSite:
        save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
        n = len(started)  # a second panel in one test gets a site of its own
        site_overrides = {
            "calibration_file": "calibration.yaml",
            "storage": {"data_dir": f"data{n}", "min_free_mb": 1},
        }
        path = write_config({**site_overrides, **(overrides or {})}, name=f"beltcam{n}.yaml")
        config = load_config(path)
        store = FrameStore.from_config(config.storage)
        add_user(store, "tech", PASSWORD, "technician")
        add_user(store, "viewer", PASSWORD, "viewer")
        log = CommandLog(store) if transport is not None else None
        context = PanelContext(config, store, path, view, transport, log)
        server = PanelServer(create_app(context), context.config.panel, context.stopping)
        server.start()
        site = PanelSite(f"http://127.0.0.1:{server.port}/", store, context, server, path)
        started.append((site, log))
        return site

    yield start
    for site, log in started:
        site.server.close()
        if log is not None:
            log.close()
        site.store.close()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole run; each test gets its own context (cookies, pages)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A fresh page whose console errors and failed requests are collected in `page.problems`."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def browser_login(page, site: PanelSite, name: str = "tech") -> None:
    page.goto(site.url + "login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/live$"))
