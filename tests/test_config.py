import re
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_documented_example_loads_and_resolves_paths_against_its_folder():
    config = load_config(REPO / "configs" / "simulated.yaml")
    assert config.storage.data_dir == (REPO / "data").resolve()
    assert config.storage.resolved_database_url() == f"sqlite:///{(REPO / 'data' / 'beltcam.db').resolve()}"
    assert config.camera("c2").kind == "simulated"


def test_hardware_examples_load_with_their_camera_settings():
    realsense = load_config(REPO / "configs" / "realsense.yaml")
    assert {c.kind for c in realsense.cameras} == {"realsense"}
    assert all(c.depth and c.timestamps == "global" and c.exposure_us for c in realsense.cameras)
    ip_cameras = load_config(REPO / "configs" / "ip-cameras.yaml")
    assert all(c.source.startswith("rtsp://") and c.rtsp_transport == "tcp" for c in ip_cameras.cameras)


def test_camera_settings_only_a_realsense_applies_are_refused_elsewhere(write_config):
    path = write_config(
        {"cameras": [{"id": "c1", "kind": "opencv", "source": "0", "exposure_us": 5000, "depth": True},
                     {"id": "c2", "kind": "simulated"}]}
    )  # fmt: skip
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: cameras.0: exposure_us, depth: only realsense cameras apply this (kind is opencv); "
        "set exposure and white balance in the camera itself"
    )


def test_relative_sqlite_url_resolves_against_config_folder(write_config, tmp_path):
    path = write_config({"storage": {"database_url": "sqlite:///db/index.db"}})
    config = load_config(path)
    assert config.storage.database_url == f"sqlite:///{tmp_path / 'db' / 'index.db'}"


def test_camera_files_resolve_against_the_config_folder_devices_urls_and_pipelines_do_not(
    write_config, tmp_path
):
    sources = {
        ("opencv", "clips/belt.mp4"): str(tmp_path / "clips" / "belt.mp4"),
        ("opencv", "0"): "0",
        ("opencv", "rtsp://10.0.0.12/stream"): "rtsp://10.0.0.12/stream",
        ("opencv", "v4l2src device=/dev/video0 ! appsink"): "v4l2src device=/dev/video0 ! appsink",
        ("realsense", "rec/site.bag"): str(tmp_path / "rec" / "site.bag"),
        ("realsense", "123456789012"): "123456789012",
    }
    for (kind, source), expected in sources.items():
        cameras = [{"id": "c1", "kind": kind, "source": source}, {"id": "c2", "kind": "simulated"}]
        assert load_config(write_config({"cameras": cameras})).cameras[0].source == expected, source


def test_unknown_key_names_file_and_field(write_config):
    path = write_config({"storage": {"dta_dir": "x"}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: storage.dta_dir: unknown key"


def test_wrong_type_names_field_path(write_config):
    path = write_config(
        {"cameras": [{"id": "c1", "kind": "simulated", "fps": "fast"}, {"id": "c2", "kind": "simulated"}]}
    )
    with pytest.raises(ConfigError, match=r"beltcam.yaml: cameras\.0\.fps: Input should be a valid number"):
        load_config(path)


def test_both_cameras_are_required(write_config):
    path = write_config({"cameras": [{"id": "c1", "kind": "simulated"}]})
    with pytest.raises(ConfigError, match="exactly one camera c1 and one camera c2"):
        load_config(path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(scalar)


def test_cron_expressions_are_validated(write_config):
    path = write_config({"schedule": {"nightly_cron": "0 25 * * *"}})
    with pytest.raises(ConfigError, match=r"schedule.nightly_cron: Error validating expression '25'"):
        load_config(path)


def test_a_candidate_method_listed_twice_is_refused(write_config):
    path = write_config({"schedule": {"candidates": ["ours_os8", "puzzlecam", "ours_os8"]}})
    with pytest.raises(ConfigError, match=r"schedule.candidates: listed more than once: ours_os8"):
        load_config(path)


def test_panel_settings_are_checked_where_the_site_file_is_read(make_config):
    assert make_config({"panel": {"port": 0}}).panel.port == 0  # any free port
    assert make_config({}).panel.host == "127.0.0.1"  # loopback unless the site opens it
    for panel, said in (
        ({"login_limit": "five a minute"}, "panel.login_limit: 'five a minute' is not a rate"),
        ({"port": 70000}, "panel.port: Input should be less than or equal to 65535"),
        ({"live_fps": 0}, "panel.live_fps: Input should be greater than 0"),
        ({"pasword": "x"}, "panel.pasword: unknown key"),
    ):
        with pytest.raises(ConfigError, match=re.escape(said)):
            make_config({"panel": panel})
