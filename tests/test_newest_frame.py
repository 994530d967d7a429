"""The live path's one-frame slot: always the newest frame, skipped frames counted, never a backlog;
fed by the same capture threads as the recorder, without slowing the recording down."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select

from edge.capture.cameras import build_sources
from edge.capture.newest import NewestFrameSlot
from edge.capture.stream_pair import StreamPair
from edge.recorder.recorder import Recorder
from edge.sources.base import Frame
from edge.store.frame_store import FrameStore
from edge.store.models import Recording

MS = 1_000_000


def _frame(camera: str, seq: int, capture_ns: int = 0) -> Frame:
    return Frame(camera, seq, np.zeros((4, 4, 3), np.uint8), capture_ns, datetime.now(UTC))


def test_the_slot_gives_the_newest_frame_and_counts_the_ones_it_skipped():
    slot = NewestFrameSlot()
    for seq in range(5):
        slot.put(_frame("c1", seq))
    assert slot.take(0.1).seq == 4
    assert (slot.offered, slot.skipped) == (5, 4)
    assert slot.take(0.05) is None  # a frame is taken once: no backlog to replay


def test_a_reader_waiting_on_the_slot_wakes_when_a_frame_arrives():
    slot = NewestFrameSlot()
    threading.Timer(0.05, slot.put, args=(_frame("c1", 7),)).start()
    started = time.monotonic()
    frame = slot.take(2.0)
    assert frame is not None and frame.seq == 7
    assert time.monotonic() - started < 1.0


def test_stream_pair_pairs_frames_themselves_by_capture_time():
    pairing: StreamPair[Frame] = StreamPair(tolerance_ns=20 * MS)
    c1 = _frame("c1", 0, 1000 * MS)
    c2 = _frame("c2", 0, 1010 * MS)
    assert pairing.add("c1", c1, c1.capture_ns) is None
    assert pairing.add("c2", c2, c2.capture_ns) == (c1, c2)


def test_a_slow_live_reader_skips_frames_while_the_recorder_keeps_every_one(make_config):
    config = make_config()
    store = FrameStore.from_config(config.storage)
    slot = NewestFrameSlot()
    recorder = Recorder(config, store, build_sources(config), newest={"c1": slot})
    taken: list[Frame] = []
    done = threading.Event()

    def slow_reader() -> None:  # a segmenter far slower than the camera
        while not done.is_set():
            frame = slot.take(0.1)
            if frame is not None:
                taken.append(frame)
                time.sleep(0.25)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        summary = recorder.run(2.0, progress=False)
    finally:
        done.set()
        reader.join()
    c1_frames = recorder.workers["c1"].health.peek().counts.frames
    assert len(taken) >= 4
    assert {frame.camera for frame in taken} == {"c1"}
    seqs = [frame.seq for frame in taken]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert slot.offered == c1_frames  # every C1 frame was offered to the live path
    assert slot.skipped >= c1_frames - len(taken) - 1  # the ones it was too slow for were skipped
    assert summary.written["c1"] == c1_frames and summary.dropped["c1"] == 0  # the recorder kept all
    with store.session() as session:
        recordings = {r.camera: r.frame_count for r in session.scalars(select(Recording))}
    assert recordings["c1"] == summary.written["c1"]
    store.close()
