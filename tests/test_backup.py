"""`beltcam backup` / `restore`: a site with users, models, a calibration and frames, restored into
an empty folder, reads the same; archives from a newer beltcam or over an existing site are refused."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile

from calibration import load_calibration, save_calibration
from calibration.calibration_file import CalibrationFile
from edge.cli.main import main
from edge.config import load_config
from edge.store.frame_store import FrameStore
from edge.store.lock import DataDirLock
from edge.store.registry import add_model, model_entry, promote
from edge.store.users import add_user, authenticate, users
from tests.panel_helpers import GEOMETRY, PASSWORD
from tests.postgres_server import new_database


def _site_with_history(write_config, tmp_path, run_recorder, overrides: dict | None = None):
    save_calibration(CalibrationFile(actuators=GEOMETRY), tmp_path / "calibration.yaml", "actuators")
    config_path = write_config({"calibration_file": "calibration.yaml", **(overrides or {})})
    config = load_config(config_path)
    store, _ = run_recorder(config, 1.0)  # a short recording: frames and camera states
    add_user(store, "anna", PASSWORD, "technician")
    models = []
    for n in range(3):
        run_dir = config.storage.data_dir / "runs" / f"run{n}"
        run_dir.mkdir(parents=True)
        (run_dir / "model.onnx").write_bytes(f"onnx {n}".encode())
        (run_dir / "metrics.json").write_text(json.dumps({"miou": 40 + n}))
        models.append(add_model(store, run_dir / "model.onnx", {"evaluation": {"miou": 40.0 + n}}))
    promote(store, models[0])
    promote(store, models[1])  # models[2] stays a candidate
    return config_path, store, models


def _restore_into(archive, folder) -> list[str]:
    """`beltcam restore` of `archive` as a new site in `folder`, with its own data directory."""
    return [
        "restore",
        str(archive),
        "--config",
        str(folder / "beltcam.yaml"),
        "--data-dir",
        str(folder / "data"),
    ]


def test_a_backup_restored_into_an_empty_folder_reads_the_same(write_config, tmp_path, run_recorder, capsys):
    config_path, store, models = _site_with_history(write_config, tmp_path, run_recorder)
    frames_before = sum(r.frame_count for r in store.recordings())
    archive = tmp_path / "site.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path), "--frames"]) == 0
    assert "backup written" in capsys.readouterr().out
    assert main(["models", "list", "--config", str(config_path)]) == 0
    listed_before = capsys.readouterr().out

    target = tmp_path / "fresh" / "site" / "beltcam.yaml"
    assert main(["restore", str(archive), "--config", str(target)]) == 0
    assert main(["models", "list", "--config", str(target)]) == 0
    out = capsys.readouterr().out
    assert out[out.index("  id  status") :] == listed_before  # after what restore said
    restored = FrameStore.from_config(load_config(target).storage)
    try:
        assert restored.data_dir == tmp_path / "fresh" / "site" / "data"
        assert [u.name for u in users(restored)] == ["anna"] and authenticate(restored, "anna", PASSWORD)
        live = model_entry(restored, models[1])
        assert live.status == "live" and live.path.read_bytes() == b"onnx 1"
        assert live.path.is_relative_to(restored.data_dir)
        assert sum(r.frame_count for r in restored.recordings()) == frames_before
        assert load_calibration(load_config(target).calibration_file) == load_calibration(
            tmp_path / "calibration.yaml"
        )
    finally:
        restored.close()
        store.close()


def test_restore_refuses_an_existing_site_a_newer_schema_and_a_non_archive(
    write_config, tmp_path, run_recorder, capsys
):
    config_path, store, _ = _site_with_history(write_config, tmp_path, run_recorder)
    store.close()
    archive = tmp_path / "site.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 0
    assert main(["backup", str(archive), "--config", str(config_path)]) == 2
    assert "exists: choose a new name" in capsys.readouterr().err
    assert main(["restore", str(archive), "--config", str(config_path)]) == 2
    assert "exists: restore into a new place, or pass --force" in capsys.readouterr().err

    newer = tmp_path / "newer.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(newer, "w:gz") as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest["schema_revision"] = "9999"
                data = json.dumps(manifest).encode()
                member.size = len(data)
            copy.addfile(member, None if data is None else io.BytesIO(data))
    target = tmp_path / "other" / "beltcam.yaml"
    assert main(["restore", str(newer), "--config", str(target)]) == 2
    assert "schema 9999, newer than this beltcam knows (up to 0004)" in capsys.readouterr().err
    assert not target.parent.exists() or not any(target.parent.iterdir())  # nothing written

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    assert main(["restore", str(junk), "--config", str(target)]) == 2
    assert "not a beltcam backup" in capsys.readouterr().err


def test_restore_beside_the_original_site_needs_its_own_data_dir_and_never_runs_under_an_agent(
    write_config, tmp_path, run_recorder, capsys
):
    original = tmp_path / "site-a"
    original.mkdir()
    config_path, store, _ = _site_with_history(write_config, tmp_path, run_recorder)
    store.close()
    absolute = config_path.read_text().replace("data_dir: data", f"data_dir: {original / 'data'}")
    moved = original / "beltcam.yaml"  # a site file naming its data directory absolutely (as init writes)
    moved.write_text(absolute.replace("calibration.yaml", str(tmp_path / "calibration.yaml")))
    (tmp_path / "data").rename(original / "data")
    archive = tmp_path / "a.tar.gz"
    assert main(["backup", str(archive), "--config", str(moved)]) == 0
    target = tmp_path / "site-b" / "beltcam.yaml"
    assert main(["restore", str(archive), "--config", str(target)]) == 2
    assert "give the restore its own (--data-dir DIR" in capsys.readouterr().err
    assert not target.exists()
    restore = _restore_into(archive, tmp_path / "site-b")
    with DataDirLock(tmp_path / "site-b" / "data", "beltcam run"):  # an agent owns the new place
        assert main(restore) == 2
        assert "in use by beltcam run" in capsys.readouterr().err
    assert main(restore) == 0
    restored = load_config(target)
    assert restored.storage.data_dir == tmp_path / "site-b" / "data"
    assert main(["models", "list", "--config", str(target)]) == 0
    assert "live" in capsys.readouterr().out
    assert main(["db", "check", "--config", str(target)]) == 0  # frames not archived: marked missing
    untouched = FrameStore.from_config(load_config(moved).storage)
    assert untouched.recordings()  # the original site is as it was
    untouched.close()


def test_a_postgresql_site_is_backed_up_with_pg_dump_and_restored_into_an_empty_database(
    write_config, tmp_path, run_recorder, capsys, postgres
):
    site_url = new_database(postgres, "site_a")
    config_path, store, models = _site_with_history(
        write_config, tmp_path, run_recorder, {"storage": {"database_url": site_url}}
    )
    store.close()
    archive = tmp_path / "pg.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 0
    assert "(pg_dump)" in capsys.readouterr().out
    assert main(["models", "list", "--config", str(config_path)]) == 0
    listed_before = capsys.readouterr().out
    target = tmp_path / "fresh" / "beltcam.yaml"
    restore = _restore_into(archive, tmp_path / "fresh")
    assert main(restore) == 2  # the site file names the original database, which holds the site
    assert "already holds tables: give the restore an empty database" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "fresh" / "data").exists()  # no half site left

    assert main([*restore, "--database-url", new_database(postgres, "site_b")]) == 0
    assert main(["models", "list", "--config", str(target)]) == 0
    out = capsys.readouterr().out
    assert out[out.index("  id  status") :] == listed_before
    restored = FrameStore.from_config(load_config(target).storage)
    try:
        assert authenticate(restored, "anna", PASSWORD)
        live = model_entry(restored, models[1])
        assert live.path.is_relative_to(tmp_path / "fresh" / "data") and live.path.read_bytes() == b"onnx 1"
    finally:
        restored.close()
    original = FrameStore.from_config(load_config(config_path).storage)
    assert original.recordings()  # the backed-up site's database is untouched
    original.close()

    sqlite_site = write_config({}, name="sqlite.yaml")  # the tiny site: SQLite under tmp_path/data
    other = ["restore", str(archive), "--config", str(tmp_path / "x" / "beltcam.yaml")]
    assert main([*other, "--database-url", f"sqlite:///{tmp_path / 'x' / 'beltcam.db'}"]) == 2
    assert "the archive holds a postgresql database" in capsys.readouterr().err
    assert sqlite_site.exists() and not (tmp_path / "x" / "beltcam.yaml").exists()


def test_a_backup_of_a_postgresql_server_that_does_not_answer_is_one_line_and_no_archive(
    write_config, tmp_path, capsys
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_path = write_config(
        {"storage": {"database_url": f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x"}}
    )
    archive = tmp_path / "never.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert "Connection refused" in err and "secret" not in err and len(err.strip().splitlines()) == 1
    assert not archive.exists() and not archive.with_name("never.tar.gz.partial").exists()


def test_cut_archives_folders_and_closed_input_are_one_line_each(write_config, tmp_path, capsys, monkeypatch):
    config_path = write_config({})
    main(["record", "--config", str(config_path), "--duration", "0.5"])
    archive = tmp_path / "site.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 0
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # a copy that stopped halfway
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    attempts = {
        ("restore", str(cut), "--config", str(tmp_path / "x.yaml")): "not a beltcam backup",
        ("restore", str(archive), "--config", str(tmp_path)): "is a folder: --config names the site file",
        ("backup", str(tmp_path / "none" / "b.tar.gz"), "--config", str(config_path)): "no such folder",
        ("init", "--config", str(a_file / "site.yaml"), "--yes"): str(a_file),
    }
    capsys.readouterr()
    for argv, said in attempts.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal, nothing piped in
    monkeypatch.setattr("getpass.getpass", lambda prompt="": input(prompt))
    assert main(["users", "add", "anna", "--role", "technician", "--config", str(config_path)]) == 2
    assert "the input ended before an answer was given" in capsys.readouterr().err


def test_a_site_on_a_disk_gone_read_only_is_still_backed_up(
    write_config, small_disk, tmp_path, run_recorder, capsys
):
    disk = small_disk(64)
    storage = {"storage": {"data_dir": str(disk / "data"), "min_free_mb": 1}}
    config_path, store, _ = _site_with_history(write_config, tmp_path, run_recorder, storage)
    store.close()
    assert main(["models", "list", "--config", str(config_path)]) == 0
    listed = capsys.readouterr().out
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    assert remounted.returncode == 0, remounted.stderr
    archive = tmp_path / "rescue.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "read as it lies" in out and "not noted in" in out and archive.is_file()
    assert main(_restore_into(archive, tmp_path / "new")) == 0
    assert main(["models", "list", "--config", str(tmp_path / "new" / "beltcam.yaml")]) == 0
    out = capsys.readouterr().out
    assert out[out.index("  id  status") :] == listed[listed.index("  id  status") :]
