"""A PostgreSQL site database in and out of a backup archive, with PostgreSQL's own client tools.

A plant server gathering several belts keeps the store on PostgreSQL; SQLite's online backup does
not reach it, and a row-by-row copy through SQLAlchemy would miss what `pg_dump` keeps (sequences,
constraints, the Alembic version) and would not be consistent while the agent writes. `pg_dump`
takes one consistent snapshot in its custom format; `pg_restore` puts it back into any server of
the same or a newer major version.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from edge.store.database import CONNECT_TIMEOUT_S

DUMP_TIMEOUT_S = 3600.0  # a database of many months of frames' rows; never forever


class PostgresToolError(RuntimeError):
    """pg_dump/pg_restore missing or failing; the message says which and what it printed."""


def is_postgresql(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def postgres_tool(name: str) -> str:
    """Debian's wrapper on PATH picks the client matching the server; the versioned folder holds the
    server's own programs (initdb, pg_ctl) and is the fallback."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise PostgresToolError(
            f"{name} not found: install PostgreSQL's programs (Debian: apt install postgresql-client, "
            "or postgresql for a server)"
        )
    return found


def _libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL as a libpq connection URI (no driver name) and the environment carrying its
    password, so that the password never shows in a process list."""
    url: URL = make_url(database_url)
    environment = {"PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S), **os.environ}
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return conninfo, environment


def _run(command: list[str], environment: dict[str, str], what: str) -> None:
    try:
        finished = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise PostgresToolError(f"{what}: no answer within {DUMP_TIMEOUT_S:.0f} s") from None
    if finished.returncode != 0:
        message = " ".join(finished.stderr.split())[-600:] or f"exit status {finished.returncode}"
        raise PostgresToolError(f"{what} failed: {message}")


def dump_database(database_url: str, out: Path) -> None:
    """One consistent snapshot of the database (custom format: compressed, restorable table by
    table), without owners or grants, since the restoring server has its own roles."""
    conninfo, environment = _libpq(database_url)
    command = [postgres_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={out}"]
    _run([*command, f"--dbname={conninfo}"], environment, "pg_dump")


def restore_database(dump: Path, database_url: str) -> None:
    """The dump into the database `database_url` names, replacing the tables it already holds, in
    one transaction: a failed restore leaves the database as it was."""
    conninfo, environment = _libpq(database_url)
    command = [
        postgres_tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={conninfo}",
        str(dump),
    ]
    _run(command, environment, "pg_restore")
