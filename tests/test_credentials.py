"""Passwords in camera and database URLs are never printed, logged or stored (DESIGN.md)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from edge.capture.cameras import build_sources
from edge.capture.report import camera_events, camera_reports, reports_as_json
from edge.config import load_config, redact_credentials
from edge.recorder.recorder import Recorder
from edge.store.frame_store import FrameStore

SECRET = "s3cret-Pa55"


def test_urls_lose_their_password_and_keep_everything_else():
    assert (
        redact_credentials(f"rtsp://admin:{SECRET}@10.0.0.7:554/stream1")
        == "rtsp://admin:***@10.0.0.7:554/stream1"
    )
    assert (
        redact_credentials(f"cannot open postgresql+psycopg://beltcam:{SECRET}@plant/beltcam now")
        == "cannot open postgresql+psycopg://beltcam:***@plant/beltcam now"
    )
    assert redact_credentials(f"postgresql://u@db/x?sslmode=require&password={SECRET}") == (
        "postgresql://u@db/x?sslmode=require&password=***"
    )
    for plain in ("rtsp://10.0.0.7/stream", "/data/belt/c1.mp4", "http://cam.local:8080/video"):
        assert redact_credentials(plain) == plain


def test_a_camera_url_with_a_password_is_never_stored_or_logged(write_config, caplog):
    camera_url = f"http://operator:{SECRET}@127.0.0.1:9/video.mjpg"  # nothing listens on port 9
    path = write_config(
        {
            "cameras": [
                {"id": "c1", "kind": "simulated", "resolution": [128, 96], "fps": 20},
                {"id": "c2", "kind": "opencv", "source": camera_url, "resolution": [128, 96], "fps": 20},
            ]
        }
    )
    config = load_config(path)
    store = FrameStore.from_config(config.storage)
    with caplog.at_level(logging.DEBUG):
        Recorder(config, store, build_sources(config)).run(1.5, progress=False)
    reports = camera_reports(store)
    shown = json.dumps(reports_as_json(reports, camera_events(store)), default=str)
    store.close()
    c2 = next(r for r in reports if r.camera == "c2")
    assert c2.last_error and "operator:***@127.0.0.1" in c2.source  # the camera is still named
    assert SECRET not in shown
    assert SECRET not in caplog.text


def test_a_database_url_with_a_password_is_never_printed(write_config):
    path = write_config(
        {"storage": {"database_url": f"postgresql+psycopg://beltcam:{SECRET}@127.0.0.1:9/belt"}}
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "db", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "beltcam:***@127.0.0.1" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_database_urls_that_cannot_work_are_one_line_without_the_password(write_config):
    for url in (
        f"postgresql+psycopg://beltcam@127.0.0.1:9/belt?password={SECRET}",  # refused: the driver's words
        f"postgresql+psycopg://beltcam:{SECRET}@127.0.0.1:notaport/belt",  # not a URL
        "nosuchdb://somewhere/belt",  # no such database kind
    ):
        path = write_config({"storage": {"database_url": url}})
        result = subprocess.run(
            [sys.executable, "-m", "edge.cli", "db", "check", "--config", str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("beltcam: error: "), result.stderr
        assert SECRET not in result.stdout + result.stderr
