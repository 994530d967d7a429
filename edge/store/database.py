"""Engine and schema for the store's index: SQLite in WAL mode by default, any SQLAlchemy URL allowed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from edge.config import redact_credentials

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseError(RuntimeError):
    """The index cannot be opened or migrated; the message names the URL and the reason."""


def _switch_to_wal(cursor, attempts: int = 100) -> None:
    """WAL is a property of the database file, set once by whoever creates it. While two processes
    open a brand-new file at the same moment, SQLite refuses the switch with "database is locked"
    without waiting (its busy timeout does not cover it), so the switch is retried briefly; on an
    existing WAL database it is a no-op that succeeds at once."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


WAL_SIZE_LIMIT = 1_048_576


def shrink_index(engine: Engine) -> None:
    """Write the SQLite WAL back into the database and truncate it, giving its space back to the disk
    (a full disk's last resort before recording pauses); nothing to do on other databases."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except OperationalError:
        pass  # a checkpoint writes pages too: on a disk already full it cannot help, and need not


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the panel read while the recorder writes; synchronous=NORMAL is crash-safe in WAL mode
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # the WAL is checkpointed every 1 MB (not SQLite's 4 MB) and shrinks back to 1 MB afterwards:
    # on a small disk it is space the frames need
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_SIZE_LIMIT // 4096}")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


CONNECT_TIMEOUT_S = 10  # PostgreSQL: a server that does not answer within this is said to be down


def make_engine(url: str) -> Engine:
    shown = redact_credentials(url)
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsing the port is lazy: a bad one must fail here, named
    except (ArgumentError, ValueError):
        raise DatabaseError(f"database_url {shown!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the database folder {folder}: {exc.strerror}") from None
    # a server that takes the connection and never answers would hold every command for minutes
    waits = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
    if "connect_timeout" in parsed.query:
        waits = {}
    try:
        engine = create_engine(parsed, connect_args=waits)
    except (ArgumentError, ValueError, ImportError) as exc:  # an unknown dialect or a missing driver
        reason = str(exc).strip().splitlines()[0]
        raise DatabaseError(f"database_url {shown!r}: {reason}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


MIGRATION_LOCK_ID = 0x6265_6C74  # PostgreSQL advisory lock key of beltcam migrations ("belt")


class SchemaOutdated(DatabaseError):
    """The database was made by an older beltcam: it is migrated by `beltcam db upgrade`, after a backup."""


def upgrade_schema(engine: Engine, revision: str = "head", existing: bool = True) -> None:
    """Bring the schema to the newest migration (or `revision`); a fresh database is created this way.
    With `existing=False` a database that already has an older schema is left as it is and
    SchemaOutdated raised: migrating a site's data is the upgrade command's decision, made after a
    backup (docs/install.md), never a side effect of opening the store.

    Several processes open the store at once (the recorder, `beltcam cameras`, the panel): the
    migration holds the database's write lock from its first statement, so one process migrates and
    the others wait for it and then find the schema current. Without that, Python's sqlite3 commits
    each DDL statement on its own and a second process sees half a schema.
    """
    config = _alembic_config()
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")  # waits up to busy_timeout for the lock
            elif engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
            config.attributes["connection"] = connection
            found = MigrationContext.configure(connection).get_current_revision()
            newest = ScriptDirectory.from_config(config).get_current_head()
            if not existing and found is not None and found != newest:
                raise SchemaOutdated(
                    f"the database {redact_credentials(str(engine.url))} has schema {found}, older than this "
                    f"beltcam's {newest}: back it up (`beltcam backup FILE`), then `beltcam db upgrade`"
                )
            command.upgrade(config, revision)
            connection.commit()
    except SchemaOutdated:
        raise
    except Exception as exc:  # the driver's own exception types vary by backend
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]  # the driver's first line
        message = f"cannot open or migrate database {str(engine.url)!r}: {reason}"
        raise DatabaseError(redact_credentials(message)) from exc


def known_revisions() -> list[str]:
    """The schema revisions this version of beltcam knows, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
