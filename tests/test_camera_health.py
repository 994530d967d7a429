"""Per-camera health in the store: state, counters and state changes, as the panel and
`beltcam cameras` read them."""

import json
import threading
import time
from datetime import datetime, timedelta

from edge.capture.cameras import build_sources
from edge.capture.report import camera_events, camera_reports, report_lines
from edge.cli.main import main
from edge.config import load_config
from edge.recorder.recorder import Recorder
from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import CameraEvent, CameraStatus


def _subsequence(wanted: list[str], seen: list[str]) -> bool:
    remaining = iter(seen)
    return all(state in remaining for state in wanted)


def test_a_stall_and_black_frames_are_counted_and_kept_as_state_changes(make_config, run_recorder):
    faults = [
        {"camera": "c2", "at_s": 0.5, "kind": "stall", "duration_s": 1.0},
        {"camera": "c2", "at_s": 2.5, "kind": "black", "duration_s": 0.5},
    ]
    store, summary = run_recorder(make_config({"simulator": {"faults": faults}}), 4.0)
    reports = {report.camera: report for report in camera_reports(store)}
    c1, c2 = reports["c1"], reports["c2"]
    assert c1.state == "stopped"
    assert (c1.counts.stalls, c1.counts.invalid_frames, c1.counts.errors) == (0, 0, 0)
    assert c1.counts.frames >= summary.written["c1"] > 0
    assert c2.state == "stopped"
    assert c2.counts.stalls >= 1 and c2.counts.invalid_frames >= 1 and c2.counts.errors == 0
    assert c2.counts.reconnects == summary.reconnects["c2"] >= 2
    assert c2.counts.failures == summary.errors["c2"]
    assert c1.paired == c2.paired == summary.paired > 0
    assert (c1.unpaired, c2.unpaired) == (summary.unpaired["c1"], summary.unpaired["c2"])
    assert c1.unpaired > 0  # C1 frames taken while C2 stalled had no partner
    assert "all black" in c2.last_error
    assert c2.last_frame_utc > utc_now() - timedelta(seconds=5)
    c2_states = [event.state for event in reversed(camera_events(store, "c2", limit=100))]
    assert _subsequence(["connecting", "ok", "stalled", "ok", "failing", "ok", "stopped"], c2_states)
    assert [event.state for event in reversed(camera_events(store, "c1", limit=100))] == [
        "connecting",
        "ok",
        "stopped",
    ]


def test_state_changes_older_than_a_month_are_forgotten_when_recording_starts(make_config, run_recorder):
    config = make_config()
    store = FrameStore.from_config(config.storage)
    with store.session() as session:
        for age_days in (45, 3):
            session.add(CameraEvent(camera="c1", utc=utc_now() - timedelta(days=age_days), state="failing"))
    store.close()
    store, _ = run_recorder(config, 0.5)
    ages = [(utc_now() - event.utc).days for event in camera_events(store, "c1", limit=100)]
    assert 3 in ages and 45 not in ages


def test_a_camera_that_cannot_connect_shows_failing_while_the_other_records(make_config):
    config = make_config(
        {
            "cameras": [
                {"id": "c1", "kind": "simulated", "resolution": [64, 48], "fps": 20},
                {"id": "c2", "kind": "opencv", "source": "rtsp://127.0.0.1:9/belt", "resolution": [64, 48]},
            ]
        }
    )
    store = FrameStore.from_config(config.storage)
    recorder = Recorder(config, store, build_sources(config))
    thread = threading.Thread(target=recorder.run, kwargs={"duration_s": 3.0, "progress": False})
    thread.start()
    try:
        deadline = time.monotonic() + 2.5
        reports = {}
        while time.monotonic() < deadline:  # what the panel sees while the agent runs
            reports = {report.camera: report for report in camera_reports(store)}
            if reports.get("c2") and reports["c2"].state == "failing" and reports["c1"].counts.frames > 5:
                break
            time.sleep(0.1)
        assert reports["c1"].state == "ok"
        assert reports["c2"].state == "failing"
        assert "cannot open rtsp://127.0.0.1:9/belt" in reports["c2"].last_error
        assert reports["c2"].counts.frames == 0 and reports["c2"].counts.errors >= 1
    finally:
        thread.join(timeout=10)
        store.close()


def test_an_agent_that_stopped_reporting_is_shown_silent(store):
    then = utc_now() - timedelta(minutes=5)
    with store.session() as session:
        for camera, state in (("c1", "ok"), ("c2", "stopped")):
            session.add(
                CameraStatus(
                    camera=camera, source="simulated", state=state, since_utc=then, updated_utc=then,
                    frames=10, dropped=0, stalls=0, invalid_frames=0, errors=0, reconnects=0,
                    paired=8, unpaired=2,
                )
            )  # fmt: skip
    reports = {report.camera: report for report in camera_reports(store)}
    assert reports["c1"].state == "silent"  # was "ok" five minutes ago, nothing since: agent gone
    assert reports["c2"].state == "stopped"  # stopped on purpose, not silent
    printed = "\n".join(report_lines(list(reports.values()), []))
    assert "c1 [simulated]: SILENT (the agent stopped reporting)" in printed


def test_beltcam_cameras_prints_state_counters_and_changes(write_config, capsys):
    path = write_config()
    assert main(["cameras", "--config", str(path)]) == 0
    assert "no camera has reported yet" in capsys.readouterr().out
    assert main(["record", "--config", str(path), "--duration", "1"]) == 0
    capsys.readouterr()
    assert main(["cameras", "--config", str(path), "--events", "3"]) == 0
    out = capsys.readouterr().out
    assert "c1 [simulated]: stopped since" in out and "c2 [simulated]: stopped since" in out
    assert "paired with the other camera" in out
    assert "recent changes:" in out
    assert len([line for line in out.splitlines() if line.startswith("  20")]) == 3
    assert main(["cameras", "--config", str(path), "--json"]) == 0  # stopped cameras are no alarm
    document = json.loads(capsys.readouterr().out)
    c1 = next(camera for camera in document["cameras"] if camera["camera"] == "c1")
    assert c1["state"] == "stopped" and c1["counts"]["frames"] > 0
    assert datetime.fromisoformat(c1["since_utc"]).tzinfo is not None
    states = [event["state"] for event in document["events"]]
    assert states[0] == "stopped" and states[-1] == "connecting"  # newest first


def test_beltcam_cameras_exits_1_while_a_camera_is_failing(make_config, write_config, capsys):
    path = write_config()
    store = FrameStore.from_config(load_config(path).storage)
    with store.session() as session:
        now = utc_now()
        session.add(
            CameraStatus(
                camera="c2", source="opencv:rtsp://cam", state="failing", since_utc=now, updated_utc=now,
                frames=0, dropped=0, stalls=0, invalid_frames=0, errors=3, reconnects=0, paired=0,
                unpaired=0, last_error="camera c2: cannot open rtsp://cam",
            )
        )  # fmt: skip
    store.close()
    assert main(["cameras", "--config", str(path)]) == 1
    assert "last error: camera c2: cannot open rtsp://cam" in capsys.readouterr().out


def test_silence_is_judged_against_the_recorders_commit_pace(write_config, capsys):
    path = write_config({"recorder": {"commit_every_s": 20}})  # rows refreshed every 20 s
    store = FrameStore.from_config(load_config(path).storage)
    with store.session() as session:
        then = utc_now() - timedelta(seconds=30)
        session.add(
            CameraStatus(
                camera="c1", source="simulated", state="ok", since_utc=then, updated_utc=then, frames=1,
                dropped=0, stalls=0, invalid_frames=0, errors=0, reconnects=0, paired=0, unpaired=0,
            )
        )  # fmt: skip
    store.close()
    assert main(["cameras", "--config", str(path)]) == 0  # 30 s is within 3 commits of 20 s
    assert "c1 [simulated]: ok since" in capsys.readouterr().out
