"""What the camera path adds per frame: frame validation (`CheckedSource`) and putting camera
timestamps on the host clock (`DeviceClock`), against the frame period they must fit in.

Both run on each camera's capture thread for every frame, so they bound the frame rate a camera
thread can keep. Frames are distinct pre-rendered simulated belt images (as a live camera's are:
the frozen-frame check hashes each one); the raw read of the same frames is timed in the same run
and subtracted.

    .venv/bin/python -m benchmarks.sources [--frames 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import numpy as np

from benchmarks.common import run_record, write_results
from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera
from edge.sources.base import Frame, FrameSource
from edge.sources.clock import DeviceClock
from edge.sources.health import CheckedSource

RESOLUTIONS = ((640, 480), (1280, 720), (1920, 1080))
POOL = 16
REPEATS = 5


class PoolCamera(FrameSource):
    """Distinct frames handed out as fast as asked: only the cost of the wrapper is left to time."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.camera_id = "c1"
        self.images = images
        self.seq = 0

    def open(self) -> None:
        self.seq = 0

    def read(self, timeout_s: float) -> Frame:
        image = self.images[self.seq % len(self.images)]
        self.seq += 1
        return Frame("c1", self.seq, image, time.monotonic_ns(), datetime.now(UTC))

    def close(self) -> None:
        pass


def _per_frame_us(source: FrameSource, frames: int) -> float:
    """Best of a few runs (the least disturbed by the machine's other work), in µs per frame."""
    runs = []
    for _ in range(REPEATS):
        source.open()
        started = time.perf_counter()
        for _ in range(frames):
            source.read(1.0)
        runs.append((time.perf_counter() - started) / frames * 1e6)
    return min(runs)


def _clock_us(calls: int) -> float:
    clock = DeviceClock()
    rng = np.random.default_rng(0)
    arrivals = (np.arange(calls) * 33_333_333 + rng.exponential(2e6, calls)).astype(np.int64)
    devices = np.arange(calls, dtype=np.int64) * 33_333_333
    started = time.perf_counter()
    for device_ns, arrival_ns in zip(devices.tolist(), arrivals.tolist(), strict=True):
        clock.to_host(device_ns, arrival_ns)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per timed run")
    args = parser.parse_args()
    simulator = SimulatorConfig(seed=0, realtime=False)
    rows = []
    for width, height in RESOLUTIONS:
        camera = SimulatedCamera(
            CameraConfig(id="c1", kind="simulated", resolution=(width, height)), simulator
        )
        images = [camera.frame_at(seq * 3).image for seq in range(POOL)]
        raw_us = _per_frame_us(PoolCamera(images), args.frames)
        checked_us = _per_frame_us(CheckedSource(PoolCamera(images), (width, height)), args.frames)
        validation_us = max(0.0, checked_us - raw_us)
        rows.append(
            {
                "resolution": f"{width}x{height}",
                "validation_us_per_frame": round(validation_us, 1),
                "share_of_30fps_period_percent": round(validation_us / (1e6 / 30) * 100, 2),
            }
        )
    clock_us = statistics.median(_clock_us(100_000) for _ in range(REPEATS))
    print(f"{'resolution':>10} {'validation µs/frame':>20} {'% of 33 ms':>10}")
    for row in rows:
        print(
            f"{row['resolution']:>10} {row['validation_us_per_frame']:>20.1f} "
            f"{row['share_of_30fps_period_percent']:>10.2f}"
        )
    print(f"DeviceClock.to_host: {clock_us:.2f} µs per frame")
    write_results(
        "sources",
        run_record(
            benchmark="sources",
            frames_per_run=args.frames,
            rows=rows,
            device_clock_us_per_frame=round(clock_us, 2),
        ),
    )


if __name__ == "__main__":
    main()
