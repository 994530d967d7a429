"""The panel through HTTP against its real server: login, roles, CSRF, the failed-login limit, the
pages, the JSON API, /metrics, promote/rollback and test-fire reaching the store and the link."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import requests

from edge.capture.live_view import LiveView
from edge.capture.mounts import last_mount_changes
from edge.store.registry import add_model, live_model, promote
from edge.store.users import UserError, add_user, authenticate
from firmware_bridge.dry_run import DryRunTransport
from tests.panel_helpers import PASSWORD, csrf_token, login


def _model_file(tmp_path, name: str):
    """A model the registry accepts (its file must exist to go live); the panel never loads it."""
    path = tmp_path / name
    path.write_bytes(b"onnx")
    return path


PAGES = ("live", "recordings", "models", "actuators", "system")
API = ("cameras", "recordings", "models", "commands", "live", "system")


def test_every_page_needs_a_login_and_the_login_page_says_nothing_about_names(panel_site):
    site = panel_site()
    anonymous = requests.Session()
    for page in PAGES:
        response = anonymous.get(site.url + page, allow_redirects=False)
        assert response.status_code == 302 and "/login" in response.headers["Location"], page
    for endpoint in API:
        assert anonymous.get(site.url + "api/" + endpoint).status_code == 401, endpoint
    unknown = login(requests.Session(), site.url, "nobody", PASSWORD)
    wrong = login(requests.Session(), site.url, "tech", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.count("Wrong name or password") == wrong.text.count("Wrong name or password") == 1


def test_a_logged_in_user_sees_every_page_and_the_api_with_security_headers(panel_site):
    site = panel_site()
    http = site.session("viewer")
    for page in PAGES:
        response = http.get(site.url + page)
        assert response.status_code == 200, page
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in response.text  # no inline script: the policy would block it
    for endpoint in API:
        assert http.get(site.url + "api/" + endpoint).headers["Content-Type"] == "application/json", endpoint
    cookie = next(c for c in http.cookies if c.name == "beltcam_session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_a_post_without_the_csrf_token_is_refused(panel_site, tmp_path):
    site = panel_site()
    model = add_model(site.store, _model_file(tmp_path, "model.onnx"))
    http = site.session("tech")
    refused = http.post(site.url + f"models/{model}/promote")
    assert refused.status_code == 400 and "CSRF" in refused.text
    assert live_model(site.store) is None
    token = csrf_token(http.get(site.url + "models").text)
    assert http.post(site.url + f"models/{model}/promote", data={"csrf_token": token}).status_code == 200
    assert live_model(site.store)[0] == model


def test_a_viewer_cannot_promote_roll_back_or_fire(panel_site, tmp_path):
    site = panel_site(transport=DryRunTransport())
    first, second = (add_model(site.store, _model_file(tmp_path, f"m{i}.onnx")) for i in (1, 2))
    promote(site.store, first)
    promote(site.store, second)
    http = site.session("viewer")
    token = csrf_token(http.get(site.url + "models").text)
    for path, data in (
        (f"models/{first}/promote", {}),
        ("models/rollback", {}),
        ("actuators/test-fire", {"channel": "3", "pulse_ms": "20"}),
    ):
        assert http.post(site.url + path, data={"csrf_token": token, **data}).status_code == 403, path
    assert live_model(site.store)[0] == second
    assert http.get(site.url + "api/commands").json()["commands"] == []


def test_rollback_from_the_panel_brings_the_previous_model_back(panel_site, tmp_path):
    site = panel_site()
    first, second = (add_model(site.store, _model_file(tmp_path, f"m{i}.onnx")) for i in (1, 2))
    promote(site.store, first)
    promote(site.store, second)
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "models").text)
    page = http.post(site.url + "models/rollback", data={"csrf_token": token})
    assert f"model {first} is live again, model {second} rejected" in page.text
    models = {m["id"]: m for m in http.get(site.url + "api/models").json()["models"]}
    assert models[first]["status"] == "live" and models[second]["status"] == "rejected"
    assert "rolled back by tech in the panel" in models[second]["reason"]


def test_repeated_wrong_passwords_are_rate_limited_but_a_good_login_is_not_counted(panel_site):
    site = panel_site({"panel": {"port": 0, "login_limit": "3 per minute"}})
    for _ in range(2):
        assert site.session("tech").get(site.url + "live").status_code == 200  # successes cost nothing
    http = requests.Session()
    codes = [login(http, site.url, "tech", "wrong password").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert "too many failed logins" in login(http, site.url, "tech", PASSWORD).text


def test_test_fire_from_the_panel_reaches_the_link_and_the_log_with_who_fired(panel_site):
    site = panel_site(transport=DryRunTransport())
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "actuators").text)
    page = http.post(
        site.url + "actuators/test-fire", data={"csrf_token": token, "channel": "4", "pulse_ms": "25"}
    )
    assert "channel 4 dry run: no valve opened (25 ms)" in page.text
    refused = http.post(
        site.url + "actuators/test-fire", data={"csrf_token": token, "channel": "99", "pulse_ms": "25"}
    )
    assert "channel 99 is not on the bank (24 nozzles: 0..23)" in refused.text
    not_a_number = http.post(
        site.url + "actuators/test-fire", data={"csrf_token": token, "channel": "3", "pulse_ms": "nan"}
    )
    assert (
        not_a_number.status_code == 200
        and "a pulse of nan ms is not a number of milliseconds" in not_a_number.text
    )
    deadline = time.monotonic() + 5
    while (
        not (commands := http.get(site.url + "api/commands").json()["commands"])
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert [(c["channels"], c["pulse_ms"], c["kind"], c["by"], c["status"]) for c in commands] == [
        ([4], 25.0, "test_fire", "tech", "dry_run")
    ]


def test_test_fire_without_an_agent_says_why(panel_site):
    site = panel_site()
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "actuators").text)
    page = http.post(
        site.url + "actuators/test-fire", data={"csrf_token": token, "channel": "1", "pulse_ms": "20"}
    )
    assert "test-fire refused: the agent is not running in this process" in page.text


def test_the_live_stream_carries_new_frames_with_the_mask_drawn(panel_site):
    view = LiveView()
    site = panel_site(view=view)
    image = np.full((48, 64, 3), 128, np.uint8)
    labels = np.zeros((48, 64), np.uint8)
    labels[:, :32] = 1
    view.publish("c1", image, labels, 0)
    http = site.session("viewer")
    with http.get(site.url + "live/c1.mjpg", stream=True, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        chunks = stream.iter_content(chunk_size=None)
        first = next(chunks)
        view.publish("c1", image, None, 1)
        received = first
        while received.count(b"--frame") < 2:
            received += next(chunks)
    assert received.count(b"Content-Type: image/jpeg") >= 2
    live = http.get(site.url + "api/live").json()
    assert live["frames"]["c1"]["sequence"] == 2 and live["frames"]["c1"]["masked"] is False
    import cv2

    snapshot = cv2.imdecode(
        np.frombuffer(http.get(site.url + "live/c1.jpg").content, np.uint8), cv2.IMREAD_COLOR
    )
    assert snapshot.shape == (48, 64, 3)


def _publish_until(view: LiveView, stop: threading.Event) -> None:
    image = np.full((48, 64, 3), 90, np.uint8)
    while not stop.wait(0.01):
        view.publish("c1", image, None, 0)


def test_closing_the_panel_under_streaming_viewers_ends_their_streams_without_an_error(panel_site, caplog):
    stop = threading.Event()
    for _ in range(3):  # the race it guards against (a connection closed under its writer) is one of timing
        view = LiveView()
        site = panel_site(view=view)
        threading.Thread(target=_publish_until, args=(view, stop), daemon=True).start()
        viewers = [site.session("viewer") for _ in range(3)]
        streams = [http.get(site.url + "live/c1.mjpg", stream=True, timeout=10) for http in viewers]
        for stream in streams:
            next(stream.iter_content(chunk_size=None))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="waitress"):
            site.server.close()
        assert time.monotonic() - started < 4.0
        for stream in streams:
            stream.close()
    stop.set()
    # errors only: "Task queue depth is 1" (a warning: every panel thread busy a moment) is load, not the race
    errors = [r for r in caplog.records if r.name.startswith("waitress") and r.levelno >= logging.ERROR]
    assert not errors, caplog.text


def test_metrics_are_prometheus_text_and_can_be_closed(panel_site):
    site = panel_site()
    metrics = requests.get(site.url + "metrics")
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert "beltcam_live_model_id 0.0" in metrics.text and "beltcam_store_bytes" in metrics.text
    closed = panel_site({"panel": {"port": 0, "public_metrics": False}})
    assert requests.get(closed.url + "metrics", allow_redirects=False).status_code == 302
    assert "beltcam_store_bytes" in closed.session("viewer").get(closed.url + "metrics").text


def test_users_are_stored_hashed_and_bad_ones_refused(store):
    entry = add_user(store, "anna", PASSWORD, "technician")
    from sqlalchemy import select

    from edge.store.models import User

    with store.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "anna"))
    assert stored.startswith("$argon2") and PASSWORD not in stored
    assert authenticate(store, "anna", PASSWORD).id == entry.id
    assert authenticate(store, "anna", "wrong password!") is None
    for name, password, role, reason in (
        ("anna", PASSWORD, "viewer", "exists already"),
        ("bob", "short", "viewer", "too short"),
        ("bob", PASSWORD, "admin", "role 'admin'"),
        ("bad name", PASSWORD, "viewer", "letters, digits"),
    ):
        try:
            add_user(store, name, password, role)
        except UserError as error:
            assert reason in str(error)
        else:
            raise AssertionError(f"{name}/{role} accepted")


def test_a_technician_records_a_camera_moved_and_a_viewer_cannot(panel_site):
    site = panel_site()
    viewer = site.session("viewer")
    assert 'id="camera-moved"' not in viewer.get(site.url + "system").text
    token = csrf_token(viewer.get(site.url + "models").text)
    form = {"camera": "c1", "note": "bracket bent", "csrf_token": token}
    assert viewer.post(site.url + "system/cameras/moved", data=form).status_code == 403
    assert last_mount_changes(site.store) == {}
    tech = site.session("tech")
    token = csrf_token(tech.get(site.url + "system").text)
    page = tech.post(site.url + "system/cameras/moved", data={**form, "csrf_token": token})
    assert "recorded: c1 mounted anew" in page.text
    assert "c1 mounted: bracket bent (by tech in the panel)" in page.text  # in the recent changes
    assert last_mount_changes(site.store)["c1"].detail == "bracket bent (by tech in the panel)"
    refused = tech.post(site.url + "system/cameras/moved", data={"camera": "c9", "csrf_token": token})
    assert "not recorded: c9 is not a camera" in refused.text
    assert set(last_mount_changes(site.store)) == {"c1"}
