"""An import is all or nothing even when it is killed: SIGTERM removes what it wrote at once; after
SIGKILL the next start-up check or `db check --repair` rolls it back, masks included, so evaluation
footage never turns into training footage. And a recorder's mask file left without its row is
re-attached to its frame (it stays ground truth) or, with no frame, removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import cv2
import numpy as np
from sqlalchemy import select

from edge.config import load_config
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording
from edge.store.reconcile import check_store, repair_store

BELTCAM = [sys.executable, "-m", "edge.cli"]


def _footage(folder, count: int = 400):
    images, masks = folder / "images", folder / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        cv2.imwrite(str(images / f"{index:04d}.png"), rng.integers(0, 255, (240, 320, 3), np.uint8))
        if index % 2 == 0:
            cv2.imwrite(str(masks / f"{index:04d}.png"), np.ones((240, 320), np.uint8))
    return images, masks


def _start_import(path, images, masks) -> subprocess.Popen:
    return subprocess.Popen(
        [*BELTCAM, "import", "--config", str(path), "--camera", "c1", "--label", "before", "--fps", "5",
         "--masks", str(masks), str(images)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_files(data_dir, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        frames = data_dir / "frames"
        if frames.is_dir() and sum(1 for p in frames.rglob("*.png")) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the import never got going")


def _files(data_dir) -> list:
    return [p for top in ("frames", "masks") for p in (data_dir / top).rglob("*") if p.is_file()]


def test_an_import_killed_mid_way_is_rolled_back_masks_and_all(write_config, tmp_path):
    path = write_config()
    config = load_config(path)
    images, masks = _footage(tmp_path)
    importer = _start_import(path, images, masks)
    _wait_for_files(config.storage.data_dir, 20)
    os.kill(importer.pid, signal.SIGKILL)
    importer.wait()
    store = FrameStore.from_config(config.storage)
    report = check_store(store)
    assert len(report.unfinished_imports) == 1 and not report.orphan_frames and not report.orphan_masks
    assert _files(config.storage.data_dir)  # what it had written is still there...
    repair_store(store, report)
    assert check_store(store).clean
    assert _files(config.storage.data_dir) == []  # ...and now gone, masks too
    with store.session() as session:
        assert session.scalars(select(Recording)).all() == []
    store.close()


def test_sigterm_stops_an_import_and_leaves_nothing(write_config, tmp_path):
    path = write_config()
    config = load_config(path)
    images, masks = _footage(tmp_path)
    importer = _start_import(path, images, masks)
    _wait_for_files(config.storage.data_dir, 20)
    importer.send_signal(signal.SIGTERM)
    _, err = importer.communicate(timeout=60)
    assert importer.returncode == 2
    assert err.strip().splitlines()[-1] == "beltcam: error: import stopped by SIGTERM: nothing was stored"
    store = FrameStore.from_config(config.storage)
    assert check_store(store).clean and _files(config.storage.data_dir) == []
    store.close()


def test_a_mask_file_without_its_row_is_reattached_or_removed(store):
    recording_id = store.begin_recording("c1", "before", "test", "png", (8, 8), 10.0, status="closed")
    now = datetime.now(UTC)
    frame_file = store.write_file(store.frame_relpath("c1", recording_id, 0, "png"), b"\x89PNG frame")
    kept = store.write_file(store.mask_relpath("c1", recording_id, 0), b"\x89PNG mask")
    stray = store.write_file(store.mask_relpath("c1", recording_id, 1), b"\x89PNG mask")  # no frame 1
    with store.session() as session:
        frame = Frame(recording_id=recording_id, seq=0, path=frame_file.path, bytes=frame_file.bytes)
        frame.capture_utc = now
        session.add(frame)
        session.get(Recording, recording_id).frame_count = 1
    report = check_store(store)
    assert sorted(report.orphan_masks) == sorted([kept.path, stray.path])
    repair_store(store, report)
    assert check_store(store).clean
    with store.session() as session:
        (mask,) = session.scalars(select(Mask)).all()
        assert (mask.path, mask.origin) == (kept.path, "recovered")
    assert not store.absolute(stray.path).exists()


def test_an_import_that_fills_the_disk_is_refused_in_one_line_and_leaves_nothing(write_config, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        path = write_config({"storage": {"data_dir": str(disk / "data")}})
        images, masks = _footage(tmp_path, count=40)  # about 9 MB of PNG for a 3 MB disk
        importer = _start_import(path, images, masks)
        _, err = importer.communicate(timeout=120)
        assert importer.returncode == 2 and "Traceback" not in err
        assert err.strip().splitlines()[-1].endswith("(No space left on device): nothing was stored")
        config = load_config(path)
        store = FrameStore.from_config(config.storage)
        assert check_store(store).clean and _files(config.storage.data_dir) == []
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
