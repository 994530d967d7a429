import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from edge.cli.main import main
from edge.config import load_config
from edge.store.database import DatabaseError, SchemaOutdated, make_engine, upgrade_schema
from edge.store.files import TEMP_SUFFIX, atomic_write
from edge.store.frame_store import FrameStore
from edge.store.models import Base, Frame, Recording

TABLES = {
    "recordings",
    "frames",
    "masks",
    "training_runs",
    "training_run_recordings",
    "models",
    "calibrations",
    "removal_commands",
    "camera_status",
    "camera_events",
    "alembic_version",
}


def test_migrations_create_every_table_in_wal_mode(store):
    assert set(inspect(store.engine).get_table_names()) >= TABLES
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"


def test_the_migrated_schema_is_exactly_the_models(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_store_made_by_the_first_schema_is_upgraded_with_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'index.db'}"
    engine = make_engine(url)
    upgrade_schema(engine, revision="0001")
    engine.dispose()
    with make_engine(url).begin() as connection:  # rows as the first schema knew them
        connection.execute(
            text(
                "INSERT INTO recordings (id, camera, label, source, status, started_utc, image_format, "
                "width, height, frame_count, dropped_frames, source_errors, reconnects, paired_frames, "
                "evicted_frames) VALUES (1, 'c1', 'before', 'x', 'closed', '2026-11-26', 'jpg', 64, 48, 1, "
                "0, 0, 0, 0, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO frames (id, recording_id, seq, path, bytes, capture_utc, capture_estimated, "
                "missing) VALUES (1, 1, 0, 'frames/c1/1/00000000.jpg', 10, '2026-11-26', 0, 0)"
            )
        )
    with pytest.raises(SchemaOutdated, match="has schema 0001, older than this beltcam's 0004: back it up"):
        FrameStore(tmp_path, url)  # opening the store never migrates a site's data by itself
    upgrade_schema(make_engine(url))  # what `beltcam db upgrade` does after a backup
    upgraded = FrameStore(tmp_path, url)
    try:
        with upgraded.session() as session:
            frame = session.get(Frame, 1)
            assert (frame.path, frame.depth_path, frame.depth_bytes) == ("frames/c1/1/00000000.jpg", None, 0)
    finally:
        upgraded.close()


def test_db_upgrade_migrates_only_after_a_fresh_backup(write_config, capsys):
    config_path = write_config({})
    config = load_config(config_path)
    url = config.storage.resolved_database_url()
    upgrade_schema(make_engine(url), revision="0003")  # a site made by the previous beltcam
    assert main(["db", "upgrade", "--config", str(config_path)]) == 2
    assert "no backup of this database (schema 0003) in the last 24 h: `beltcam backup FILE` first" in (
        capsys.readouterr().err
    )
    with pytest.raises(SchemaOutdated):
        FrameStore.from_config(config.storage)  # nor does any command that opens the store
    archive = config_path.parent / "before-upgrade.tar.gz"
    assert main(["backup", str(archive), "--config", str(config_path)]) == 0  # the old schema as it is
    kept = archive.read_bytes()
    archive.write_bytes(b"junk")  # the archive replaced since: no backup any more
    assert main(["db", "upgrade", "--config", str(config_path)]) == 2
    assert "no backup of this database (schema 0003)" in capsys.readouterr().err
    archive.write_bytes(kept)
    assert main(["db", "upgrade", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert f"backup of schema 0003: {archive}" in out and "migrated: 0003 -> 0004" in out
    assert "to go back: install the previous beltcam and `beltcam restore` that backup" in out
    FrameStore.from_config(config.storage).close()
    assert main(["db", "upgrade", "--config", str(config_path)]) == 0
    assert "is at the newest schema (0004)" in capsys.readouterr().out


def test_reopening_an_existing_store_keeps_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'index.db'}"
    first = FrameStore(tmp_path, url)
    recording_id = first.begin_recording("c1", "before", "test", "jpg", (64, 48), 10.0)
    first.close()
    second = FrameStore(tmp_path, url)
    assert [r.id for r in second.recordings()] == [recording_id]
    second.close()


def test_many_processes_opening_a_new_store_at_once_all_get_the_same_schema(tmp_path):
    """The recorder, `beltcam cameras` and the panel may all open a store that does not exist yet."""
    for trial in range(3):
        folder = tmp_path / str(trial)
        url = f"sqlite:///{folder / 'index.db'}"
        errors = []

        def open_store(folder=folder, url=url, errors=errors):
            try:
                FrameStore(folder, url).close()
            except DatabaseError as error:
                errors.append(str(error))

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        store = FrameStore(folder, url)
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        store.close()


def test_bad_databases_are_reported_with_the_reason(tmp_path):
    with pytest.raises(DatabaseError, match="not a valid SQLAlchemy URL"):
        make_engine("not a url")
    with pytest.raises(DatabaseError, match="cannot create the database folder /proc/no"):
        make_engine("sqlite:////proc/no/such/dir/x.db")
    garbage = tmp_path / "index.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match=r"cannot open or migrate database.*not a database"):
        upgrade_schema(make_engine(f"sqlite:///{garbage}"))


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "frame.jpg"
    atomic_write(target, b"first")
    atomic_write(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert [p.name for p in target.parent.iterdir()] == ["frame.jpg"]
    assert not any(p.name.endswith(TEMP_SUFFIX) for p in tmp_path.rglob("*"))


def test_new_folders_and_evictions_are_made_durable(store, monkeypatch):
    """A power cut must not lose a folder the index names, nor bring back a file eviction deleted:
    new directory entries and deletions are fsynced in their parent before the index moves on."""
    import edge.store.files as files_module
    import edge.store.retention as retention_module
    from edge.config import RetentionConfig
    from edge.store.retention import DiskQuota, other_bytes

    synced: list = []
    real = files_module.fsync_directory

    def recording_fsync(directory):
        synced.append(directory)
        real(directory)

    monkeypatch.setattr(files_module, "fsync_directory", recording_fsync)
    monkeypatch.setattr(retention_module, "fsync_directory", recording_fsync)
    recording_id = store.begin_recording("c1", "unlabeled", "test", "jpg", (8, 8), 10.0, status="closed")
    written = store.write_file(store.frame_relpath("c1", recording_id, 0, "jpg"), b"jpeg bytes")
    folder = store.absolute(written.path).parent
    assert synced[-2:] == [folder.parent.parent, folder.parent]  # frames/ got c1/, c1/ got <id>/
    with store.session() as session:
        frame = Frame(recording_id=recording_id, seq=0, path=written.path, bytes=written.bytes)
        frame.capture_utc = session.get(Recording, recording_id).started_utc
        session.add(frame)
        session.get(Recording, recording_id).frame_count = 1
    synced.clear()
    quota = other_bytes(store.data_dir) + 1
    DiskQuota(store, quota_bytes=quota, retention=RetentionConfig(low_watermark=0.5)).make_room(0)
    assert not store.absolute(written.path).exists()
    assert synced == [folder]
