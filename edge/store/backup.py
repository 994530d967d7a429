"""`beltcam backup` / `beltcam restore`: what a site cannot get back once it is lost, in one archive.

The site file, the calibration file, the database (SQLite's online backup API, or `pg_dump` for a
PostgreSQL server: consistent while the agent writes), the live model and the models before it with
their metrics, and optionally the frames. A restore onto a fresh machine writes the site file where
it is told, the database and the files under the data directory that site file names, and moves
every path the database holds (models, runs, calibration versions) to the new places, so `beltcam
models list` and the calibration read the same as before. An archive made by a newer beltcam (a
schema this one does not know) is refused before anything is written.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from edge.config import SiteConfig, load_config, redact_credentials
from edge.store.database import current_revision, known_revisions, make_engine, upgrade_schema
from edge.store.frame_store import DEPTH_DIR, FRAMES_DIR, MASKS_DIR, FrameStore, utc_now
from edge.store.lock import DataDirLock
from edge.store.models import Calibration, Model, TrainingRun
from edge.store.pg_dump import PostgresToolError, dump_database, restore_database
from edge.store.reconcile import check_store, repair_store

ARCHIVE_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/beltcam.db"
POSTGRES_MEMBER = "database/beltcam.pgdump"
BACKUP_LOG = "backups.jsonl"
KEPT_MODELS = 3  # the live model and the two newest others with their files: what a rollback needs
RUN_FILES = ("metrics.json", "model.onnx")


class BackupError(ValueError):
    """A backup or restore that cannot be made; the message names the file and why."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    bytes: int
    models: list[int]
    frames: int


def _database_kind(config: SiteConfig) -> str:
    """The two databases beltcam backs up: "sqlite" (a file) or "postgresql" (a server)."""
    url = make_url(config.storage.resolved_database_url())
    kind = url.get_backend_name()
    if kind == "postgresql" or (kind == "sqlite" and url.database):
        return kind
    raise BackupError(
        f"{config.storage.shown_database_url()}: beltcam backs up SQLite files and PostgreSQL servers only"
    )


def _sqlite_path(config: SiteConfig) -> Path:
    return Path(make_url(config.storage.resolved_database_url()).database)


def _snapshot_database(config: SiteConfig, folder: Path, progress) -> tuple[Path, str]:
    """The database, copied consistently into `folder`; (the copy, its name in the archive)."""
    if _database_kind(config) == "postgresql":
        progress(f"database {config.storage.shown_database_url()} (pg_dump)")
        snapshot = folder / Path(POSTGRES_MEMBER).name
        try:
            dump_database(config.storage.resolved_database_url(), snapshot)
        except PostgresToolError as error:
            raise BackupError(f"{config.storage.shown_database_url()}: {error}") from None
        return snapshot, POSTGRES_MEMBER
    database = _sqlite_path(config)
    progress(f"database {database} (online backup)")
    snapshot = folder / Path(SQLITE_MEMBER).name
    source = _open_for_copy(database, progress)
    with source, sqlite3.connect(snapshot) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return snapshot, SQLITE_MEMBER


def _open_for_copy(database: Path, progress) -> sqlite3.Connection:
    """The site's database for its online backup. On a disk that went read-only (when a backup is
    needed most) SQLite cannot make the shared-memory file its write-ahead log needs: the file is then
    read as it lies, which holds everything once the log was checkpointed (no `-wal` left with data)."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        connection.close()
    log = Path(f"{database}-wal")
    if log.is_file() and log.stat().st_size > 0:
        raise BackupError(
            f"{database}: cannot be opened here and its write-ahead log {log} holds writes not yet in it: "
            "copy the data folder to a writable disk and back up from that copy"
        )
    progress(f"{database} cannot be opened for writing (a read-only disk?): read as it lies")
    return sqlite3.connect(f"file:{urllib.parse.quote(str(database))}?immutable=1", uri=True)


def _snapshot_engine(snapshot: Path) -> Engine:
    """The copy, read only: what is backed up is what the archive holds."""
    return create_engine(f"sqlite:///file:{urllib.parse.quote(str(snapshot))}?mode=ro&uri=true")


def _models_with_files(engine: Engine) -> list[tuple[int, str, str]]:
    """(id, path, status) of the live model and the newest others whose files exist; plain SQL on
    columns every schema has, so that a database of an older beltcam is backed up before its upgrade."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, path, status FROM models ORDER BY id DESC")).all()
    present = [(row.id, row.path, row.status) for row in rows if Path(row.path).is_file()]
    live = [row for row in present if row[2] == "live"]
    return live + [row for row in present if row[2] != "live"][: KEPT_MODELS - len(live)]


def write_backup(
    config: SiteConfig,
    config_path: Path,
    engine: Engine,
    out: Path,
    frames: bool = False,
    progress: Callable[[str], None] = print,
) -> BackupSummary:
    if _database_kind(config) == "sqlite" and not _sqlite_path(config).is_file():  # never made empty here
        database = _sqlite_path(config)
        raise BackupError(f"{database}: no database there (storage.data_dir / database_url of {config_path})")
    partial = out.with_name(out.name + ".partial")
    frame_count = 0
    with tempfile.TemporaryDirectory() as tmp:
        snapshot, member = _snapshot_database(config, Path(tmp), progress)
        source = _snapshot_engine(snapshot) if member == SQLITE_MEMBER else engine
        try:
            with _reached(config.storage.resolved_database_url()):
                models = _models_with_files(source)
                revision = current_revision(source)
        finally:
            if source is not engine:
                source.dispose()
        manifest = {
            "archive_version": ARCHIVE_VERSION,
            "created_utc": utc_now().isoformat(timespec="seconds"),
            "database": _database_kind(config),
            "schema_revision": revision,
            "site_file": config_path.name,
            "config_dir": str(config_path.resolve().parent),
            "data_dir": str(config.storage.data_dir),
            "calibration_file": str(config.calibration_file) if config.calibration_file else None,
            "models": {str(model_id): path for model_id, path, _ in models},
            "frames": frames,
        }
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(config_path, arcname=f"site/{config_path.name}")
            if config.calibration_file is not None and config.calibration_file.is_file():
                archive.add(config.calibration_file, arcname=f"calibration/{config.calibration_file.name}")
            archive.add(snapshot, arcname=member)
            for model_id, path, status in models:
                progress(f"model {model_id} ({status}) {path}")
                folder = Path(path).parent
                for name in RUN_FILES:
                    if (folder / name).is_file():
                        archive.add(folder / name, arcname=f"models/{model_id}/{name}")
                if Path(path).name not in RUN_FILES:
                    archive.add(path, arcname=f"models/{model_id}/{Path(path).name}")
            if frames:
                for tree in (FRAMES_DIR, MASKS_DIR, DEPTH_DIR):
                    if (config.storage.data_dir / tree).is_dir():
                        progress(f"{tree}/ (frames asked for)")
                        archive.add(config.storage.data_dir / tree, arcname=f"data/{tree}")
                        frame_count += sum(
                            1 for p in (config.storage.data_dir / tree).rglob("*") if p.is_file()
                        )
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            archive.addfile(info, fileobj=io.BytesIO(data))
    partial.replace(out)
    _record(config.storage.data_dir, out, manifest["schema_revision"], progress)
    return BackupSummary(out, out.stat().st_size, [model_id for model_id, _, _ in models], frame_count)


def _record(data_dir: Path, archive: Path, revision: str | None, progress: Callable[[str], None]) -> None:
    """Remembered beside the data, for `beltcam db upgrade`: is there a fresh backup of this schema?"""
    line = {
        "created_utc": utc_now().isoformat(),
        "archive": str(archive.resolve()),
        "schema_revision": revision,
    }
    try:
        with (data_dir / BACKUP_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
    except OSError as error:  # the archive is written; only `db upgrade` will not know of it
        progress(f"warning: the backup is not noted in {data_dir / BACKUP_LOG} ({error.strerror})")


def fresh_backup(data_dir: Path, revision: str | None, max_age_h: float) -> dict | None:
    """The newest backup of a database at `revision` made within `max_age_h` whose archive is still
    there, or None."""
    path = data_dir / BACKUP_LOG
    if not path.is_file():
        return None
    since = utc_now() - timedelta(hours=max_age_h)
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
            made = datetime.fromisoformat(entry["created_utc"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
        if (
            entry.get("schema_revision") == revision
            and made >= since
            and _readable(Path(entry["archive"]), revision)
        ):
            return entry
    return None


def _readable(archive: Path, revision: str | None) -> bool:
    """The archive is still there and still a beltcam backup of that schema (not replaced, not cut:
    the manifest is its last member)."""
    try:
        return read_manifest(archive)["schema_revision"] == revision
    except BackupError:
        return False


@dataclass(frozen=True)
class RestoreSummary:
    config_path: Path
    data_dir: Path
    models: list[int]
    schema_revision: str


def read_manifest(archive_path: Path) -> dict:
    """The archive's manifest, checked: a beltcam backup, of an archive and a schema this beltcam knows."""
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            member = archive.extractfile(MANIFEST)
            manifest = json.loads(member.read()) if member is not None else None
    except (OSError, EOFError, tarfile.TarError, KeyError, json.JSONDecodeError) as error:
        raise BackupError(f"{archive_path}: not a beltcam backup ({error or type(error).__name__})") from None
    if not isinstance(manifest, dict) or "schema_revision" not in manifest:
        raise BackupError(f"{archive_path}: not a beltcam backup (no manifest)")
    if manifest.get("archive_version", 0) > ARCHIVE_VERSION:
        raise BackupError(
            f"{archive_path}: made by a newer beltcam (archive version {manifest['archive_version']})"
        )
    known = known_revisions()
    if manifest["schema_revision"] not in known:
        raise BackupError(
            f"{archive_path}: its database has schema {manifest['schema_revision']}, newer than this beltcam "
            f"knows (up to {known[-1]}): upgrade beltcam first, then restore"
        )
    return manifest


def _moved(old: str, roots: list[tuple[Path, Path]], fallback: Path) -> Path:
    """Where a path of the backed-up site lives on the restored one."""
    path = Path(old)
    for before, after in roots:
        if path.is_relative_to(before):
            return after / path.relative_to(before)
    return fallback


def restore_backup(
    archive_path: Path,
    config_path: Path,
    force: bool = False,
    progress: Callable[[str], None] = print,
    data_dir: Path | None = None,
    database_url: str | None = None,
) -> RestoreSummary:
    """`data_dir`: where the restored site keeps its data, `database_url`: its database (each written
    into the restored site file, whose comments are then lost); without them, what the backed-up site
    file names."""
    manifest = read_manifest(archive_path)
    if config_path.is_dir():
        raise BackupError(
            f"{config_path} is a folder: --config names the site file to write ({config_path}/beltcam.yaml?)"
        )
    if config_path.exists() and not force:
        raise BackupError(f"{config_path} exists: restore into a new place, or pass --force to replace it")
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp)
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(unpacked, filter="data")  # no absolute paths, links out or devices
        site_text = (unpacked / "site" / manifest["site_file"]).read_text(encoding="utf-8")
        if data_dir is not None or database_url is not None:
            site_text = _site_moved(site_text, manifest, data_dir, database_url)
        staged = unpacked / "staged.yaml"
        staged.write_text(site_text, encoding="utf-8")
        config_path.parent.mkdir(parents=True, exist_ok=True)
        placed = _placed(staged, config_path)
        try:
            # the restored site file's relative paths mean "next to it" at its new place
            config = load_config(placed)
            fresh = not config.storage.data_dir.exists() and not config_path.exists()
            try:
                # one owner per data directory: never under a running agent or recorder
                with DataDirLock(config.storage.data_dir, "beltcam restore"):
                    restored = _unpack_site(manifest, unpacked, config, config_path, force, progress)
                    placed.replace(config_path)
                    _move_paths(config, manifest, _roots(manifest, config, config_path), restored)
                    if not manifest.get("frames"):
                        _index_without_frames(config, progress)
            except BaseException:
                if fresh:  # a restore into a new place that did not finish leaves no half site behind
                    shutil.rmtree(config.storage.data_dir, ignore_errors=True)
                    config_path.unlink(missing_ok=True)
                raise
        finally:
            placed.unlink(missing_ok=True)
    return RestoreSummary(config_path, config.storage.data_dir, sorted(restored), manifest["schema_revision"])


def _index_without_frames(config: SiteConfig, progress: Callable[[str], None]) -> None:
    """An archive made without --frames: the restored index says its frames are not here (the store's
    own safe repairs), instead of `db check` and doctor finding hundreds missing."""
    store = FrameStore.from_config(config.storage)
    try:
        for action in repair_store(store, check_store(store)):
            progress(f"frames not in the archive: {action}")
    finally:
        store.close()


def _roots(manifest: dict, config: SiteConfig, config_path: Path) -> list[tuple[Path, Path]]:
    """Old place -> new place: the data directory first (it may lie inside the site file's folder)."""
    return [
        (Path(manifest["data_dir"]), config.storage.data_dir),
        (Path(manifest["config_dir"]), config_path.resolve().parent),
    ]


def _unpack_site(
    manifest: dict, unpacked: Path, config: SiteConfig, config_path: Path, force: bool, progress
):
    restore_database_now = _database_restorer(manifest, unpacked, config, force)
    data_dir = config.storage.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    restore_database_now()
    progress(f"database -> {config.storage.shown_database_url()}")
    calibration = manifest.get("calibration_file")
    if calibration and config.calibration_file is not None:
        source = unpacked / "calibration" / Path(calibration).name
        if source.is_file():
            config.calibration_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, config.calibration_file)
            progress(f"calibration -> {config.calibration_file}")
    restored = _restore_models(manifest, unpacked, _roots(manifest, config, config_path), data_dir, progress)
    if manifest.get("frames"):
        for tree in (FRAMES_DIR, MASKS_DIR, DEPTH_DIR):
            if (unpacked / "data" / tree).is_dir():
                shutil.copytree(unpacked / "data" / tree, data_dir / tree, dirs_exist_ok=True)
                progress(f"{tree}/ -> {data_dir / tree}")
    return restored


def _database_restorer(manifest: dict, unpacked: Path, config: SiteConfig, force: bool) -> Callable[[], None]:
    """Every check on the restored site's database done now; what writes it, returned for later."""
    archived = manifest.get("database", "sqlite")  # archives from before PostgreSQL backups are SQLite
    target = _database_kind(config)
    shown = config.storage.shown_database_url()
    if archived != target:
        raise BackupError(
            f"the archive holds a {archived} database but the restored site file names {shown}: "
            f"restore with --database-url naming a {archived} database"
        )
    if target == "postgresql":
        url = config.storage.resolved_database_url()
        if _holds_tables(url) and not force:
            raise BackupError(
                f"{shown} already holds tables: give the restore an empty database (--database-url URL), "
                "or --force to replace that site's database with the backup's"
            )

        def restore_postgresql() -> None:
            try:
                restore_database(unpacked / POSTGRES_MEMBER, url)
            except PostgresToolError as error:
                raise BackupError(f"{shown}: {error}") from None

        return restore_postgresql
    database = _sqlite_path(config)
    if database.exists() and not force:
        raise BackupError(
            f"{database} exists: the restored site would replace a site's database; give the restore its "
            "own (--data-dir DIR, or --database-url naming a new file), or --force to replace it"
        )

    def restore_sqlite() -> None:
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(unpacked / SQLITE_MEMBER, database)

    return restore_sqlite


@contextmanager
def _reached(database_url: str) -> Iterator[None]:
    """A database server that does not answer, said in one line naming it."""
    try:
        yield
    except OperationalError as error:
        reason = " ".join(str(error.orig).split())
        raise BackupError(f"{redact_credentials(database_url)}: cannot connect ({reason})") from None


def _holds_tables(database_url: str) -> bool:
    engine = make_engine(database_url)
    try:
        with _reached(database_url):
            return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _site_moved(site_text: str, manifest: dict, data_dir: Path | None, database_url: str | None) -> str:
    """The site file with `storage.data_dir` set to `data_dir` (and a calibration file that lived in
    the old data directory moved along with it) and `storage.database_url` to `database_url`."""
    site = yaml.safe_load(site_text)
    storage = site.setdefault("storage", {})
    if database_url is not None:
        storage["database_url"] = database_url
    if data_dir is not None:
        old_data = Path(manifest["data_dir"])
        storage["data_dir"] = str(data_dir)
        calibration = manifest.get("calibration_file")
        if calibration and Path(calibration).is_relative_to(old_data):
            site["calibration_file"] = str(data_dir / Path(calibration).relative_to(old_data))
    return yaml.safe_dump(site, sort_keys=False)


def _placed(staged: Path, config_path: Path) -> Path:
    """The staged site file, put beside its destination (relative paths resolve against it) under a
    temporary name, so nothing is written at the destination before every check passed."""
    beside = config_path.with_name(f".{config_path.name}.restoring")
    shutil.copyfile(staged, beside)
    return beside


def _restore_models(manifest: dict, unpacked: Path, roots, data_dir: Path, progress) -> dict[int, Path]:
    restored: dict[int, Path] = {}
    for model_id, old_path in manifest["models"].items():
        new_path = _moved(old_path, roots, data_dir / "restored-models" / model_id / Path(old_path).name)
        new_path.parent.mkdir(parents=True, exist_ok=True)
        for file in (unpacked / "models" / model_id).iterdir():
            target = new_path if file.name == Path(old_path).name else new_path.parent / file.name
            shutil.copyfile(file, target)
        restored[int(model_id)] = new_path
        progress(f"model {model_id} -> {new_path}")
    return restored


def _move_paths(config: SiteConfig, manifest: dict, roots, restored: dict[int, Path]) -> None:
    """Every path the database holds, moved to the restored site's places. An archive of an older
    beltcam is migrated first: the archive itself is the backup a migration asks for."""
    engine = make_engine(config.storage.resolved_database_url())
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    store = FrameStore.from_config(config.storage)
    try:
        with store.session() as session:
            for model in session.scalars(select(Model)):
                fallback = config.storage.data_dir / "restored-models" / str(model.id) / Path(model.path).name
                model.path = str(restored.get(model.id) or _moved(model.path, roots, fallback))
            for run in session.scalars(select(TrainingRun)):
                run.run_dir = str(
                    _moved(run.run_dir, roots, config.storage.data_dir / "restored-runs" / str(run.id))
                )
            old_calibration = manifest.get("calibration_file")
            if old_calibration and config.calibration_file is not None:
                for row in session.scalars(select(Calibration).where(Calibration.path == old_calibration)):
                    row.path = str(config.calibration_file)
    finally:
        store.close()
