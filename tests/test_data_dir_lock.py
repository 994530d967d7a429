"""One agent owns a data directory: while `beltcam record` runs, commands that change the store refuse
in one line; after a SIGKILL the lock is gone with the process, and the next start mends the store by
itself (start-up reconciliation) instead of waiting for someone to run `db check --repair`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from sqlalchemy import select

from edge.config import load_config
from edge.store.frame_store import FrameStore
from edge.store.lock import DataDirLock, DataDirLocked
from edge.store.models import Recording
from tests.test_crash_and_check import indexed_count

BELTCAM = [sys.executable, "-m", "edge.cli"]


def _beltcam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BELTCAM, *args], capture_output=True, text=True, timeout=120)


def _start_recording(path, config) -> subprocess.Popen:
    recorder = subprocess.Popen(
        [*BELTCAM, "record", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    database = config.storage.data_dir / "beltcam.db"
    while not (database.exists() and indexed_count(config) >= 10) and time.monotonic() < deadline:
        time.sleep(0.2)
    return recorder


def test_maintenance_refuses_while_the_recorder_owns_the_data_directory(write_config, tmp_path):
    path = write_config()
    config = load_config(path)
    images = tmp_path / "images"
    images.mkdir()
    import cv2

    for index in range(3):
        cv2.imwrite(str(images / f"{index}.png"), np.full((96, 128, 3), 60 + index, np.uint8))
    recorder = _start_recording(path, config)
    try:
        repair = _beltcam("db", "check", "--repair", "--config", str(path))
        assert repair.returncode == 2
        assert repair.stderr.count("\n") == 1 and "in use by beltcam record (pid" in repair.stderr
        imported = _beltcam(
            "import",
            "--config",
            str(path),
            "--camera",
            "c1",
            "--label",
            "unlabeled",
            "--fps",
            "5",
            str(images),
        )
        assert imported.returncode == 2 and "in use by beltcam record" in imported.stderr
        assert _beltcam("db", "upgrade", "--config", str(path)).returncode == 2
        check = _beltcam("db", "check", "--config", str(path))  # reading is fine beside it, and what
        assert "recording in progress (beltcam record (pid" in check.stdout  # it is writing is no problem
        assert check.returncode == 0 and "store is clean" in check.stdout, check.stdout
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=30)
    store = FrameStore.from_config(config.storage)
    with store.session() as session:
        assert {r.status for r in session.scalars(select(Recording))} == {"closed"}  # nothing meddled
    store.close()
    assert _beltcam("db", "check", "--repair", "--config", str(path)).returncode == 0  # free again


def test_after_sigkill_the_next_start_takes_the_lock_and_mends_the_store(write_config):
    path = write_config({"storage": {"image_format": "png"}, "recorder": {"commit_every_s": 1.0}})
    config = load_config(path)
    recorder = _start_recording(path, config)
    time.sleep(0.55)  # between two index commits, with files in flight
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait()
    second = _beltcam("record", "--config", str(path), "--duration", "1")
    assert second.returncode == 0, second.stderr
    assert "start-up check: closed 2 recordings left open as interrupted" in second.stdout
    check = _beltcam("db", "check", "--config", str(path))
    assert check.returncode == 0 and "store is clean" in check.stdout
    store = FrameStore.from_config(config.storage)
    with store.session() as session:
        statuses = sorted(r.status for r in session.scalars(select(Recording)))
    store.close()
    assert statuses == ["closed", "closed", "interrupted", "interrupted"]


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path):
    with DataDirLock(tmp_path, "beltcam record"):
        try:
            DataDirLock(tmp_path, "beltcam import").acquire()
        except DataDirLocked as refused:
            message = str(refused)
        else:
            raise AssertionError("a second holder got the lock")
    assert f"in use by beltcam record (pid {os.getpid()}" in message and "beltcam import" in message
    with DataDirLock(tmp_path, "beltcam import"):
        pass
