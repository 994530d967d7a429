"""Depth from a RealSense camera goes into the store next to its colour frame, counts against the
disk quota, and is kept consistent by `db check --repair`."""

import cv2
import numpy as np
from sqlalchemy import select

from edge.config import RetentionConfig
from edge.simulator.calibration_truth import render_clip, simulated_pair
from edge.sources.realsense_recording import write_recording
from edge.store.models import Frame, Recording
from edge.store.reconcile import check_store, repair_store
from edge.store.retention import DiskQuota, other_bytes

W, H = 96, 72


def _depth_maps(count: int) -> list[np.ndarray]:
    maps = []
    for index in range(count):
        depth = np.full((H, W), 900, np.uint16)
        depth[20:40, 10 + 5 * index : 30 + 5 * index] = 650  # an object 25 cm tall moving along
        maps.append(depth)
    return maps


def _bytes_on_disk(store) -> int:
    return sum(path.stat().st_size for path in store.data_dir.rglob("*") if path.suffix in {".jpg", ".png"})


def test_recorded_depth_is_stored_aligned_and_repaired(tmp_path, make_config, run_recorder):
    camera, _ = simulated_pair(resolution=(W, H), fps=10.0, seed=3)
    images, times_s = render_clip(camera, 8)
    depth_maps = _depth_maps(8)
    recording = write_recording(
        tmp_path / "c1.db3", images, [1000 + 1000 * t for t in times_s], fps=10.0, depth_mm=depth_maps
    )
    config = make_config(
        {
            "cameras": [
                {"id": "c1", "kind": "realsense", "source": str(recording), "resolution": [W, H]}
                | {"depth": True},
                {"id": "c2", "kind": "simulated", "resolution": [W, H], "fps": 10},
            ]
        }
    )
    store, summary = run_recorder(config, 2.5)  # the 0.8 s recording plays once, then C1 is done
    assert summary.written["c1"] >= 4  # real-time playback drops framesets on a busy machine
    assert summary.errors["c1"] == 0 and summary.reconnects["c1"] == 0  # its end ended C1's recording
    assert summary.written["c2"] >= 0.8 * 2.5 * 10  # while the simulated C2 kept its pace
    with store.session() as session:
        rows = session.execute(select(Frame, Recording.camera).join(Recording)).all()
    c1_rows = [frame for frame, camera in rows if camera == "c1"]
    assert all(frame.depth_path is None for frame, camera in rows if camera == "c2")
    for frame in c1_rows:
        stored = cv2.imread(str(store.absolute(frame.depth_path)), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16
        # same intrinsics, no offset: aligned = raw, but for the holes rs.align leaves at object edges
        assert min(np.count_nonzero(stored != depth) for depth in depth_maps) < 0.05 * W * H
        assert frame.depth_bytes == store.absolute(frame.depth_path).stat().st_size
    assert store.usage_bytes() == _bytes_on_disk(store)  # the quota counts depth images too
    assert check_store(store).clean

    lost, unindexed = c1_rows[0], c1_rows[1]
    store.absolute(lost.depth_path).unlink()
    with store.session() as session:
        session.get(Frame, unindexed.id).depth_path = None  # a crash between file and index
    report = check_store(store)
    assert report.missing_depth == [lost.depth_path]
    assert report.orphan_depth == [unindexed.depth_path]
    repair_store(store, report)
    assert check_store(store).clean
    with store.session() as session:
        assert session.get(Frame, lost.id).depth_path is None
        assert session.get(Frame, unindexed.id).depth_path == unindexed.depth_path

    quota = DiskQuota(
        store, other_bytes(store.data_dir) + store.usage_bytes() // 2, RetentionConfig(keep_masked=False)
    )
    quota.make_room(0)  # evicts down to the low watermark
    assert quota.evicted_frames > 0
    assert quota.used_bytes == store.usage_bytes() == _bytes_on_disk(store)  # depth files went too
