"""A throwaway PostgreSQL cluster for tests: initdb in a temp folder, loopback TCP, stopped after."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from edge.store.pg_dump import postgres_tool


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, developers may not
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_url() -> Iterator[str]:
    """Yields a SQLAlchemy URL of a fresh cluster; its own folder, since pytest's are root-only."""
    folder = Path(tempfile.mkdtemp(prefix="beltcam-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data = folder / "cluster"
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_server_user([postgres_tool("initdb"), "-D", str(data), "-U", "beltcam", "-A", "trust"]), **run
    )
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    log = folder / "server.log"
    subprocess.run(
        _as_server_user(
            [postgres_tool("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg://beltcam@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([postgres_tool("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), **run
        )
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server_url: str, name: str) -> str:
    """An empty database on the test cluster (one per test: the cluster is shared); its URL."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
