"""`beltcam doctor`: every item of the pre-flight check on the simulated belt, and the right item
failing for a stopped camera, a missing calibration, an unloadable model, a full disk and an
unplugged actuator link."""

from __future__ import annotations

import json
import socket

import pytest

from edge.cli import doctor_checks
from edge.cli.main import main
from edge.config import load_config
from edge.store.database import make_engine, upgrade_schema
from edge.store.frame_store import FrameStore
from edge.store.registry import add_model, live_model, promote
from tests.conftest import simulated_cameras

SITE = {"cameras": simulated_cameras(fps=10.0), "calibration_file": "calibration.yaml"}


@pytest.fixture(autouse=True)
def short_camera_sample(monkeypatch):
    monkeypatch.setattr(doctor_checks, "CAMERA_SAMPLE_S", 0.6)


def _items(capsys, err: list | None = None) -> dict[str, dict]:
    """doctor --json's items by name; `err` collects what went to stderr."""
    captured = capsys.readouterr()
    if err is not None:
        err.append(captured.err)
    return {item["item"]: item for item in map(json.loads, captured.out.splitlines())}


def _site(write_config, overrides: dict | None = None, model: bytes | None = None, name="beltcam.yaml"):
    config_path = write_config({**SITE, **(overrides or {})}, name=name)
    assert (
        main(["record", "--config", str(config_path), "--duration", "1.5"]) == 0
    )  # calibration, camera states
    if model is not None:
        config = load_config(config_path)
        store = FrameStore.from_config(config.storage)
        path = config.storage.data_dir / "model.onnx"
        path.write_bytes(model)
        promote(store, add_model(store, path))
        store.close()
    return config_path


def test_a_healthy_simulated_site_passes_but_for_the_model(write_config, live_model_file, capsys):
    config_path = _site(write_config, model=live_model_file.read_bytes())
    capsys.readouterr()
    assert main(["doctor", "--config", str(config_path), "--json"]) == 0
    items = _items(capsys)
    for item in (
        "site file",
        "training",
        "database",
        "camera c1",
        "camera c2",
        "calibration",
        "live model",
        "actuator link",
        "disk",
        "store",
    ):
        assert items[item]["status"] == "pass", items[item]
    assert "loads on CPU" in items["live model"]["seen"]
    assert items["time sync"]["status"] in ("pass", "warn")
    # the site asks for a native TensorRT engine, which `run` cannot build here: doctor says so too
    jetson = write_config({**SITE, "live": {"engine": "tensorrt"}}, name="jetson.yaml")
    assert main(["doctor", "--config", str(jetson), "--json"]) == 1
    model = _items(capsys)["live model"]
    assert model["status"] == "fail" and "TensorRT" in model["seen"] and "live.engine" in model["fix"]
    # a broken model promoted over a good one: roll back to the good one
    config = load_config(config_path)
    store = FrameStore.from_config(config.storage)
    broken = config.storage.data_dir / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    first = live_model(store)[0]
    promote(store, add_model(store, broken))
    store.close()
    assert main(["doctor", "--config", str(config_path), "--json"]) == 1
    model = _items(capsys)["live model"]
    assert (
        model["status"] == "fail" and f"bring back model {first} (`beltcam models rollback`)" == model["fix"]
    )
    # a second broken one over it: a rollback would bring back the first broken one, which cannot run
    store = FrameStore.from_config(config.storage)
    broken.with_name("broken-too.onnx").write_bytes(b"cut short")
    promote(store, add_model(store, broken.with_name("broken-too.onnx")))
    store.close()
    assert main(["doctor", "--config", str(config_path), "--json"]) == 1
    fix = _items(capsys)["live model"]["fix"]
    assert fix == f"make model {first} live (`beltcam models promote {first}`)"


def test_each_fault_fails_its_own_item_with_a_fix(write_config, tmp_path, capsys):
    _site(write_config, model=b"not an onnx model")  # recorded: calibration and camera states; a bad model
    with socket.socket() as probe:  # a port nobody listens on: the controller is unplugged
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    cameras = [
        {"id": "c1", "kind": "opencv", "source": str(tmp_path / "unplugged.mp4")},
        {"id": "c2", "kind": "simulated", "resolution": [128, 96], "fps": 10.0},
    ]
    faulty = write_config(
        {
            **SITE,
            "cameras": cameras,
            "storage": {"data_dir": "data", "min_free_mb": 1e9},  # a floor no disk is above: full
            "bridge": {"transport": "modbus_tcp", "port": dead_port, "heartbeat_ms": 50},
        },
        name="faulty.yaml",
    )
    capsys.readouterr()
    assert main(["doctor", "--config", str(faulty), "--json"]) == 1
    err = []
    items = _items(capsys, err)
    assert "pymodbus" not in err[0]  # the item says the link is down; the client's retries say nothing
    failed = {name for name, item in items.items() if item["status"] == "fail"}
    assert failed == {"camera c1", "live model", "actuator link", "disk"}
    assert "does not open" in items["camera c1"]["seen"] and "cameras[c1].source" in items["camera c1"]["fix"]
    assert items["camera c2"]["status"] == "pass"
    assert (
        "not a readable ONNX model" in items["live model"]["seen"]
        and items["live model"]["fix"].startswith("train one")  # the only model: nothing to roll back to
    )
    assert "not connected" in items["actuator link"]["seen"]
    assert "min_free_mb" in items["disk"]["fix"]
    no_calibration = write_config({**SITE, "calibration_file": "nowhere.yaml"}, name="uncalibrated.yaml")
    assert main(["doctor", "--config", str(no_calibration)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  calibration     " in out and "nowhere.yaml: no such file" in out
    assert "fix: calibrate the site (docs/calibration.md), or correct calibration_file" in out
    assert "failed: calibration, live model" in out


def test_the_disk_forecast_uses_the_pace_of_the_footage_it_has(make_config, run_recorder):
    from edge.store.disk_report import DAY_S, MB, MIN_SPAN_S, disk_report

    config = make_config({})
    store, _ = run_recorder(config, 1.0)  # a second of footage: the floor of a minute applies
    recorded = store.usage_bytes()
    report = disk_report(store, config.storage)
    assert report["rate_mb_per_day"] == pytest.approx(recorded * DAY_S / MIN_SPAN_S / MB, rel=0.02, abs=0.01)
    assert report["days_to_quota"] is None  # no quota: the disk's free-space floor is what counts
    free_mb = report["free_mb"] - config.storage.min_free_mb
    assert report["days_to_full"] == pytest.approx(free_mb / report["rate_mb_per_day"], rel=0.02, abs=0.01)
    quota = make_config({"storage": {"data_dir": "data", "min_free_mb": 1, "disk_quota_mb": 50}})
    with_quota = disk_report(store, quota.storage)
    assert with_quota["days_to_quota"] == pytest.approx(
        (50 - recorded / MB) / with_quota["rate_mb_per_day"], rel=0.02, abs=0.01
    )
    assert with_quota["days_to_full"] is None  # a quota that fits on the disk keeps the floor away


def test_an_invalid_site_file_or_a_missing_data_folder_is_a_failed_item(write_config, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras: 3\n")
    assert main(["doctor", "--config", str(broken), "--json"]) == 1
    (item,) = _items(capsys).values()
    assert (item["item"], item["status"]) == ("site file", "fail") and "cameras" in item["seen"]
    gone = write_config({"storage": {"data_dir": "/proc/no-such-folder", "min_free_mb": 1}}, name="gone.yaml")
    assert main(["doctor", "--config", str(gone), "--json"]) == 1
    items = _items(capsys)
    assert items["database"]["status"] == "fail" and "No such file or directory" in items["database"]["seen"]
    assert items["camera c1"]["status"] == items["actuator link"]["status"] == "pass"  # still judged
    old_site = write_config({}, name="old.yaml")
    upgrade_schema(make_engine(load_config(old_site).storage.resolved_database_url()), revision="0003")
    assert main(["doctor", "--config", str(old_site), "--json"]) == 1
    assert "`beltcam db upgrade`" in _items(capsys)["database"]["fix"]


def test_the_site_file_alone_is_checked_without_opening_or_creating_anything(write_config, tmp_path, capsys):
    """A technician editing the file away from the belt: no database appears where the file points."""
    data_dir = tmp_path / "not-yet"
    site = write_config({"storage": {"data_dir": str(data_dir)}, "model": {"image_size": 128}})
    assert main(["doctor", "--config", str(site), "--json", "--site-file"]) == 0
    items = _items(capsys)
    assert list(items) == ["site file", "training"] and items["training"]["status"] == "warn"
    assert not data_dir.exists()
    twice = write_config({"schedule": {"candidates": ["puzzlecam", "puzzlecam"]}}, name="twice.yaml")
    assert main(["doctor", "--config", str(twice), "--site-file"]) == 1
    assert "schedule.candidates: listed more than once: puzzlecam" in capsys.readouterr().out


def _calibration_item(config_path, capsys) -> dict:
    capsys.readouterr()
    main(["doctor", "--config", str(config_path), "--json"])
    return _items(capsys)["calibration"]


def test_a_camera_mounted_anew_fails_the_calibration_until_its_belt_plane_is_measured_again(
    write_config, tmp_path, capsys
):
    from tests.test_cli_calibrate import _points

    config_path = _site(write_config)
    assert _calibration_item(config_path, capsys)["status"] == "pass"
    assert main(["cameras", "moved", "c1", "--config", str(config_path), "--note", "bracket bent"]) == 0
    assert "recorded: c1 mounted anew" in capsys.readouterr().out
    item = _calibration_item(config_path, capsys)
    assert item["status"] == "fail" and "c1 mounted anew" in item["seen"] and "bracket bent" in item["seen"]
    assert "calibrate plane --camera c1" in item["fix"]
    plane = ["calibrate", "plane", "--config", str(config_path), "--points", str(_points(tmp_path))]
    assert main([*plane, "--camera", "c2"]) == 0  # the other camera's plane does not clear c1
    assert _calibration_item(config_path, capsys)["status"] == "fail"
    assert main([*plane, "--camera", "c1"]) == 0
    assert _calibration_item(config_path, capsys)["status"] == "pass"
    assert main(["cameras", "--config", str(config_path)]) == 0
    assert "c1 mounted: bracket bent" in capsys.readouterr().out  # kept in the camera's history


def test_a_camera_whose_source_changed_between_runs_warns_the_calibration(write_config, capsys):
    config_path = _site(write_config)
    cameras = simulated_cameras(fps=10.0)
    cameras[0]["source"] = "rig-2"  # a new serial number in the site file: maybe another camera
    _site(write_config, {"cameras": cameras})
    item = _calibration_item(config_path, capsys)
    assert item["status"] == "warn", item
    assert "c1's source changed from simulated to simulated:rig-2" in item["seen"]
    assert item["fix"].startswith("if the camera was replaced or moved")


def test_pairing_is_told_from_the_store_when_the_sessions_counters_say_nothing(write_config, capsys):
    """1.5 s of belt is shorter than its travel from C1 to C2 (800 mm at 300 mm/s): no C1 frame could be
    paired, none was unpaired. The stored session says so, with what to do, not "no recording yet"."""
    from sqlalchemy import func, select

    from edge.store.models import Recording

    config_path = _site(write_config)
    store = FrameStore.from_config(load_config(config_path).storage)
    with store.session() as session:
        frames = session.scalar(select(func.sum(Recording.frame_count)).where(Recording.camera == "c1"))
    store.close()
    capsys.readouterr()
    main(["doctor", "--config", str(config_path), "--json"])
    pairing = _items(capsys)["C1/C2 pairing"]
    assert frames > 0 and pairing["status"] == "warn"
    assert pairing["seen"] == f"0 of the last recording session's {frames} C1 frames paired with C2"
    assert "record longer than the belt takes from C1 to C2" in pairing["fix"]


def test_training_warns_when_every_nightly_method_is_temporal_on_coarse_class_maps(make_config):
    """At 128 px the temporal term costs on a crowded belt: the site is told, unless a method without
    it is also trained (the gate then picks) or the input is 256 px."""
    default = doctor_checks._training(make_config())
    assert (default.status, default.seen) == ("pass", "ours at model.image_size 256")
    coarse = doctor_checks._training(make_config({"model": {"image_size": 128}}))
    assert coarse.status == "warn" and "under 16 cells across (below 256 px" in coarse.seen
    assert "model.image_size: 256" in coarse.fix and "puzzlecam" in coarse.fix and "ours_os8" in coarse.fix
    variant = make_config({"model": {"image_size": 128}, "schedule": {"method": "ours_meanfuse"}})
    assert doctor_checks._training(variant).status == "warn"  # a variant of ours has the term too
    offered = make_config({"model": {"image_size": 128}, "schedule": {"candidates": ["puzzlecam"]}})
    assert doctor_checks._training(offered).status == "pass"
    fine_maps = make_config({"model": {"image_size": 128}, "schedule": {"method": "ours_os8"}})
    assert doctor_checks._training(fine_maps).status == "pass"  # 16 cells across at stride 8
    too_coarse = make_config({"model": {"image_size": 96}, "schedule": {"method": "ours_os8"}})
    assert doctor_checks._training(too_coarse).status == "warn"  # 12 cells, even at stride 8
    spatial_only = make_config({"model": {"image_size": 96}, "schedule": {"method": "puzzlecam"}})
    assert doctor_checks._training(spatial_only).status == "pass"
