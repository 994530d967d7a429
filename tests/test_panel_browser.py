"""The panel in a real browser (Debian's headless Chromium driven by Playwright): logging in, the
live image changing, every page without a console error, test-fire from the Actuators page, what a
viewer cannot do, CSRF, and the failed-login limit."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from edge.capture.live_view import LiveView
from firmware_bridge.dry_run import DryRunTransport
from tests.panel_helpers import PASSWORD, browser_login

FRAME_PERIOD_S = 0.05


@pytest.fixture
def moving_belt():
    """A live view fed like the agent feeds it: C1 frames with label maps, C2 frames, until the test ends."""
    view = LiveView()
    stop = threading.Event()

    def feed() -> None:
        step = 0
        while not stop.is_set():
            image = np.zeros((96, 128, 3), np.uint8)
            x = (step * 4) % 112
            image[30:60, x : x + 16] = 220
            labels = np.zeros((96, 128), np.uint8)
            labels[30:60, x : x + 16] = 1
            view.publish("c1", image, labels, step)
            view.publish("c2", image[::-1].copy(), None, step)
            step += 1
            stop.wait(FRAME_PERIOD_S)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    view.set_status(lambda: {"frames_processed": 1, "late": 0, "tracks": 1})
    yield view
    stop.set()
    feeder.join(timeout=5)


def _wait_until(page, condition, timeout_s: float = 10.0) -> None:
    """Poll from the test (the page's CSP forbids the eval that `wait_for_function` needs)."""
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("the page did not get there in time")


def _sequence(page) -> int:
    text = page.text_content("#seq-c1") or ""
    return int(text) if text.isdigit() else 0


def _picture_signature(page, selector: str) -> list[int]:
    """A coarse copy of what an <img> shows now, drawn through a canvas."""
    return page.eval_on_selector(
        selector,
        """img => { const c = document.createElement('canvas'); c.width = 32; c.height = 24;
                    const g = c.getContext('2d'); g.drawImage(img, 0, 0, 32, 24);
                    return Array.from(g.getImageData(0, 0, 32, 24).data); }""",
    )


def test_login_then_the_live_image_and_its_figures_change(panel_site, browser_page, moving_belt):
    site = panel_site(view=moving_belt)
    page = browser_page
    page.goto(site.url + "live")
    assert "/login" in page.url
    browser_login(page, site)
    _wait_until(page, lambda: _sequence(page) > 0)
    first_sequence = _sequence(page)
    _wait_until(page, lambda: page.eval_on_selector("#view-c1", "img => img.naturalWidth") > 0)
    before = _picture_signature(page, "#view-c1")
    page.wait_for_timeout(600)
    _wait_until(page, lambda: _sequence(page) > first_sequence)
    assert _picture_signature(page, "#view-c1") != before  # the belt moved in the picture itself
    red = page.eval_on_selector(
        "#view-c1",
        """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
                    c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                    const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i] - d[i + 1] > 60) n++;
                    return n; }""",
    )
    assert red > 100  # the illegal object is drawn red over C1
    assert page.text_content("#agent-figures") and "tracks in view" in page.text_content("#agent-figures")
    assert page.problems == []


def test_every_page_in_the_menu_opens_without_a_console_error(panel_site, browser_page):
    site = panel_site()
    page = browser_page
    browser_login(page, site)
    links = page.eval_on_selector_all("header nav a", "links => links.map(a => a.getAttribute('href'))")
    assert {"/live", "/recordings", "/models", "/actuators", "/system"} <= set(links)
    for link in links:
        response = page.goto(site.url.rstrip("/") + link, wait_until="domcontentloaded")
        assert response.status == 200, link
        page.wait_for_load_state("load")
    assert page.problems == []


def test_a_test_fire_from_the_actuators_page_shows_in_the_command_log(panel_site, browser_page):
    site = panel_site(transport=DryRunTransport())
    page = browser_page
    browser_login(page, site)
    page.goto(site.url + "actuators")
    page.fill("#test-fire input[name=channel]", "7")
    page.fill("#test-fire input[name=pulse_ms]", "30")
    page.click("#test-fire button")
    assert "channel 7 dry run: no valve opened (30 ms)" in page.text_content(".flash")
    for _ in range(20):  # the command log's writer thread may take a moment
        row = page.inner_text("#command-log tbody")
        if "test_fire" in row:
            break
        page.wait_for_timeout(250)
        page.reload()
    assert re.search(r"7\s+30\s+test_fire\s+tech\s+dry_run", " ".join(row.split())), row
    assert page.problems == []


def test_a_viewer_has_no_controls_and_a_forged_post_is_refused(panel_site, browser_page):
    site = panel_site(transport=DryRunTransport())
    page = browser_page
    browser_login(page, site, "viewer")
    page.goto(site.url + "actuators")
    assert page.query_selector("#test-fire") is None
    token = page.get_attribute("meta[name=csrf-token]", "content")
    forged = page.request.post(
        site.url + "actuators/test-fire", form={"csrf_token": token, "channel": "1", "pulse_ms": "20"}
    )
    assert forged.status == 403
    page.goto(site.url + "models")
    assert page.query_selector("button:has-text('Roll back')") is None


def test_a_post_without_the_csrf_token_is_refused_in_the_browser(panel_site, browser_page):
    site = panel_site(transport=DryRunTransport())
    page = browser_page
    browser_login(page, site)
    refused = page.request.post(site.url + "actuators/test-fire", form={"channel": "1", "pulse_ms": "20"})
    assert refused.status == 400 and "CSRF" in refused.text()


def test_repeated_wrong_passwords_get_rate_limited_in_the_browser(panel_site, browser_page):
    site = panel_site({"panel": {"port": 0, "login_limit": "2 per minute"}})
    page = browser_page
    page.goto(site.url + "login")
    for attempt in range(3):
        page.fill("input[name=name]", "tech")
        page.fill("input[name=password]", f"wrong {attempt}")
        page.click("button[type=submit]")
    assert "too many failed logins" in page.text_content("main")
    page.goto(site.url + "login")
    page.fill("input[name=name]", "tech")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert "too many failed logins" in page.text_content("main")  # even the right password waits
