"""Highest C1+C2 frame rate the recorder sustains without a drop, per resolution and image format.

Frames are rendered by the simulated belt beforehand and replayed at the target rate through the
frame validation every source gets, so the figure measures the recorder (validation, queue,
encoding, atomic writes, index commits), not the renderer. A rate
passes when a trial of --seconds drops nothing with the default queue of 64 frames
(so an overload of more than 64 frames per trial shows as drops).

    .venv/bin/python -m benchmarks.record [--seconds 8] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime

from benchmarks.common import describe_machine, run_record, write_results
from edge.config import CameraConfig, SimulatorConfig, SiteConfig
from edge.recorder.recorder import Recorder
from edge.simulator.camera import SimulatedCamera
from edge.sources.base import Frame, FrameSource, SourceStalled
from edge.sources.health import CheckedSource
from edge.store.frame_store import FrameStore

POOL = 24  # distinct frames per camera, replayed in a loop
QUEUE = 64  # the recorder's default


class ReplayCamera(FrameSource):
    """Pre-rendered simulated frames, delivered at a fixed rate like a free-running camera."""

    def __init__(self, camera_id: str, frames: list[Frame], fps: float) -> None:
        self.camera_id = camera_id
        self.frames = frames
        self.period_ns = round(1e9 / fps)
        self.next_ns = 0
        self.seq = 0

    def open(self) -> None:
        self.next_ns = time.monotonic_ns()

    def read(self, timeout_s: float) -> Frame:
        wait_s = (self.next_ns - time.monotonic_ns()) / 1e9
        if wait_s > timeout_s:
            raise SourceStalled("replay ahead of time")
        if wait_s > 0:
            time.sleep(wait_s)
        template = self.frames[self.seq % len(self.frames)]
        frame = Frame(self.camera_id, self.seq, template.image, self.next_ns, datetime.now(UTC))
        self.seq += 1
        self.next_ns += self.period_ns
        return frame

    def close(self) -> None:
        pass


def render_pool(resolution: tuple[int, int]) -> dict[str, list[Frame]]:
    simulator = SimulatorConfig(seed=0, realtime=False)
    pool = {}
    for camera_id in ("c1", "c2"):
        camera = SimulatedCamera(
            CameraConfig(id=camera_id, kind="simulated", resolution=resolution), simulator
        )
        pool[camera_id] = [camera.frame_at(seq * 3) for seq in range(POOL)]
    return pool


def trial(pool: dict[str, list[Frame]], resolution, image_format: str, fps: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        config = SiteConfig.model_validate(
            {
                "cameras": [
                    # the replay sets the real pace; the site file's fps (at most 240) only labels it
                    {"id": c, "kind": "simulated", "resolution": list(resolution), "fps": min(fps, 240)}
                    for c in ("c1", "c2")
                ],
                "storage": {"data_dir": folder, "image_format": image_format},
                "recorder": {"queue_size": QUEUE},
            }
        )
        store = FrameStore.from_config(config.storage)
        sources = {c: CheckedSource(ReplayCamera(c, frames, fps), resolution) for c, frames in pool.items()}
        summary = Recorder(config, store, sources).run(seconds, progress=False)
        store.close()
    return {"written": sum(summary.written.values()), "dropped": sum(summary.dropped.values())}


def highest_rate(pool, resolution, image_format: str, seconds: float, steps: int) -> tuple[float, dict]:
    """Per-camera fps: double until a trial drops, then bisect."""
    good, bad = 0.0, None
    fps = 5.0
    best = {}
    for _ in range(steps + 8):
        outcome = trial(pool, resolution, image_format, fps, seconds)
        print(
            f"  {resolution[0]}x{resolution[1]} {image_format} {2 * fps:6.1f} fps total: {outcome}",
            flush=True,
        )
        if outcome["dropped"] == 0:
            good, best = fps, outcome
        else:
            bad = fps
        if bad is None:
            fps *= 2
        else:
            if steps == 0:
                break
            steps -= 1
            fps = (good + bad) / 2
    return 2 * good, best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each trial")
    parser.add_argument("--quick", action="store_true", help="fewer bisection steps")
    args = parser.parse_args()
    rows = []
    for resolution in ((640, 480), (1280, 720)):
        pool = render_pool(resolution)
        for image_format in ("jpg", "png"):
            total_fps, outcome = highest_rate(
                pool, resolution, image_format, args.seconds, 2 if args.quick else 4
            )
            rows.append(
                {
                    "resolution": f"{resolution[0]}x{resolution[1]}",
                    "format": image_format,
                    "max_total_fps_without_drops": round(total_fps, 1),
                    "frames_written_in_trial": outcome.get("written", 0),
                }
            )
    machine = describe_machine()
    print(f"\nrecorder throughput on {machine} ({args.seconds:.0f} s trials, queue of {QUEUE})")
    print(f"{'resolution':>10} {'format':>6} {'C1+C2 fps':>10}")
    for row in rows:
        print(f"{row['resolution']:>10} {row['format']:>6} {row['max_total_fps_without_drops']:>10.1f}")
    write_results("record", run_record(benchmark="record", trial_seconds=args.seconds, rows=rows))


if __name__ == "__main__":
    main()
