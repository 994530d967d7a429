"""What the live session's threads cost a small box: the live model paced at the camera's rate, alone
and beside a busy neighbour (the recorder's encoders, a nightly training), with ONNX Runtime's own
default session (one thread per core, spinning between runs) and with the live path's sessions
(`trainer.onnx_model.session_options`: no spinning; `live.threads` 0 = one per core, or 1, 2).

Per setting and condition (ResNet-18, random init, input 256 x 192, batch 1, one frame per period):
  ms p50 / p99      a frame's time through the session (what the live path's `segment` stage waits)
  over period       frames that took longer than the camera's period (the live path skips the next)
  cores used        the session process's CPU seconds over the wall seconds it ran (spinning included):
                    what the live model takes from everything else on the box
  neighbour work    busy-loop turns the neighbour's processes completed per second, as a share of
                    what they completed beside no live model: what the live model left them

    .venv/bin/python -m benchmarks.live_threads [--threads 0 1 2] [--fps 10] [--seconds 15]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from benchmarks.common import describe_machine, run_record, write_results
from benchmarks.inference import SHAPE, THRESHOLD, prepared_inputs
from trainer.export import export_onnx
from trainer.model import CamClassifier
from trainer.onnx_model import session_options


def _busy(stop: multiprocessing.Event, turns: multiprocessing.Value) -> None:
    """One core's worth of pure-Python work (no thread pool of its own), counted in turns."""
    done = 0
    while not stop.is_set():
        sum(range(20_000))
        done += 1
        if done % 50 == 0:
            with turns.get_lock():
                turns.value += 50


class Neighbour:
    """`os.cpu_count()` busy processes, started and stopped around one measurement."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")  # pure Python: none of the parent's libraries run
        self.stop = context.Event()
        self.turns = context.Value("q", 0)
        self.workers = [
            context.Process(target=_busy, args=(self.stop, self.turns), daemon=True)
            for _ in range(os.cpu_count() or 1)
        ]

    def __enter__(self) -> Neighbour:
        for worker in self.workers:
            worker.start()
        deadline = time.monotonic() + 10
        while self.turns.value < 50 * len(self.workers) and time.monotonic() < deadline:
            time.sleep(0.05)  # the workers running before the clock starts
        self.started, self.turns_at_start = time.monotonic(), self.turns.value
        return self

    def rate(self) -> float:
        return (self.turns.value - self.turns_at_start) / (time.monotonic() - self.started)

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=10)


def neighbour_alone(seconds: float) -> float:
    """The neighbour's turns per second with no live model beside it."""
    with Neighbour() as neighbour:
        time.sleep(seconds)
        return neighbour.rate()


def paced(session: onnxruntime.InferenceSession, inputs: list, fps: float, seconds: float) -> dict:
    """One frame per camera period, as the live path takes the newest frame when it is free."""
    period = 1.0 / fps
    for batch, _ in inputs[:3]:  # warm-up
        session.run(["cams"], {"images": batch})
    times, cpu_started, wall_started = [], time.process_time(), time.monotonic()
    next_frame = wall_started
    while time.monotonic() - wall_started < seconds:
        batch = inputs[len(times) % len(inputs)][0]
        started = time.perf_counter()
        session.run(["cams"], {"images": batch})
        times.append((time.perf_counter() - started) * 1e3)
        next_frame += period
        time.sleep(max(0.0, next_frame - time.monotonic()))
        next_frame = max(next_frame, time.monotonic() - period)  # a late frame does not pile up a backlog
    wall = time.monotonic() - wall_started
    return {
        "ms_p50": round(statistics.median(times), 2),
        "ms_p99": round(float(np.percentile(times, 99)), 2),
        "over_period": round(sum(t > period * 1e3 for t in times) / len(times), 3),
        "cores_used": round((time.process_time() - cpu_started) / wall, 3),
        "frames": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1, 2], help="live.threads values")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    print(f"{describe_machine()}: ResNet-18 at {SHAPE[1]}x{SHAPE[0]}, {args.fps} fps", flush=True)
    inputs = prepared_inputs(8)
    torch.manual_seed(0)
    alone_rate = neighbour_alone(args.seconds)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resnet18.onnx"
        export_onnx(CamClassifier("resnet18", 16, None).eval(), path, SHAPE, THRESHOLD)
        settings = [("onnxruntime default (spinning)", onnxruntime.SessionOptions())]
        settings += [(f"live.threads {threads}", session_options(threads)) for threads in args.threads]
        for setting, options in settings:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            alone = paced(session, inputs, args.fps, args.seconds)
            rows.append({"session": setting, "condition": "alone", **alone})
            print(rows[-1], flush=True)
            with Neighbour() as neighbour:
                figures = paced(session, inputs, args.fps, args.seconds)
                share = neighbour.rate() / alone_rate
            rows.append({"session": setting, "condition": "busy neighbour", **figures,
                         "neighbour_work": round(share, 3)})  # fmt: skip
            print(rows[-1], flush=True)
    print(f"\n{'session':>31} {'condition':>15} {'ms p50':>7} {'ms p99':>7} {'over period':>11} "
          f"{'cores used':>10} {'neighbour work':>14}")  # fmt: skip
    for row in rows:
        work = row.get("neighbour_work", "-")
        print(f"{row['session']:>31} {row['condition']:>15} {row['ms_p50']:>7} {row['ms_p99']:>7} "
              f"{row['over_period']:>11} {row['cores_used']:>10} {work:>14}")  # fmt: skip
    write_results("live_threads", rows)
    write_results("live_threads_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
