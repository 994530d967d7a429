"""`beltcam init`: a site file from scripted answers (cameras tried on the spot, a Modbus controller
tried, a wrong camera asked again) that `load_config` accepts; from flags alone with `--yes`; an
existing file never replaced without a yes or --force."""

from __future__ import annotations

import io

import cv2
import numpy as np

from edge.cli.main import main
from edge.config import load_config
from firmware_bridge.modbus_simulator import ModbusValveSimulator


def _video(path, size=(160, 120), frames=5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for n in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * n, np.uint8))
    writer.release()
    return path


def test_scripted_answers_write_a_site_file_that_loads(tmp_path, monkeypatch, capsys):
    before, after = _video(tmp_path / "c1.avi"), _video(tmp_path / "c2.avi", size=(200, 100))
    target = tmp_path / "site" / "beltcam.yaml"
    with ModbusValveSimulator(8) as plc:
        answers = [
            "belt-7",
            str(tmp_path / "no-such-camera.avi"),  # a wrong answer is asked again
            str(before),
            str(after),
            f"modbus_tcp :{plc.port}",  # no host: asked again, the cameras' answers kept
            f"modbus_tcp 127.0.0.1:{plc.port}",
            "",  # data directory: the default
        ]
        monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(answers) + "\n"))
        assert main(["init", "--config", str(target)]) == 0
    out = capsys.readouterr().out
    assert "no host before the port (modbus_tcp HOST[:PORT]): try again" in out
    assert "try again" in out and "delivers 160x120 frames" in out and f"127.0.0.1:{plc.port} answers" in out
    config = load_config(target)
    assert config.site_name == "belt-7"
    assert [(c.id, c.kind, c.source, c.resolution) for c in config.cameras] == [
        ("c1", "opencv", str(before), (160, 120)),
        ("c2", "opencv", str(after), (200, 100)),
    ]
    assert (config.bridge.transport, config.bridge.host, config.bridge.port) == (
        "modbus_tcp",
        "127.0.0.1",
        plc.port,
    )
    assert config.storage.data_dir == tmp_path / "site" / "data"
    assert config.calibration_file == tmp_path / "site" / "data" / "calibration.yaml"


def test_flags_alone_and_an_existing_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "beltcam.yaml"
    flags = ["init", "--config", str(target), "--yes", "--c1", "simulated", "--c2", "simulated"]
    assert main([*flags, "--link", "serial /dev/ttyUSB9", "--site-name", "line 2"]) == 0
    config = load_config(target)
    assert (config.bridge.transport, config.bridge.serial_port) == ("serial", "/dev/ttyUSB9")
    assert config.site_name == "line 2"
    written = target.read_text()
    assert main(flags) == 2
    assert "exists: not replaced (--force replaces it)" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["init", "--config", str(target)]) == 2
    assert target.read_text() == written  # nothing touched
    assert main([*flags, "--force"]) == 0
    assert load_config(target).bridge.transport == "simulator"
    assert main([*flags, "--force", "--link", "carrier pigeon"]) == 2
    assert (
        "link: 'carrier pigeon': simulator, modbus_tcp HOST[:PORT] or serial PORT" in capsys.readouterr().err
    )
    assert load_config(target).bridge.transport == "simulator"  # a refused answer writes nothing
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main([*flags, "--force", "--data-dir", str(a_file / "data")]) == 2
    assert f"init: data directory: {a_file / 'data'}: cannot write there" in capsys.readouterr().err
    assert main([*flags, "--force", "--site-name", ""]) == 2
    assert "site_name" in capsys.readouterr().err
