"""What the live session's threads cost a small box: the live model paced at the camera's rate, alone
and beside a busy neighbour (the recorder's encoders, a nightly training), with ONNX Runtime's own
default session (one thread per core, spinning between runs) and with the live path's sessions
(`trainer.onnx_model.session_options`: no spinning; `live.threads` 0 = one per core, or 1, 2).

Per setting and condition (ResNet-18, random init, input 256 x 192, batch 1, one frame per period):
  ms p50 / p99      a frame's time through the session (what the live path's `segment` stage waits)
  over period       frames that took longer than the camera's period (the live path skips the next)
  cores used        the session process's CPU seconds over the wall seconds it ran (spinning included):
                    what the live model takes from everything else on the box
  neighbour work    the neighbour's turns per second (busy-loop turns, or training steps), as a share
                    of what it completed beside no live model: what the live model left it

Neighbours: `busy` is one pure-Python busy process per core at the live path's own priority (the
recorder's encoders); `training` is what the nightly loop runs beside the live path: ResNet-18 training
steps (batch 8, 128 x 96, torch's default threads: one per core) in a process whose priority is lowered
by `schedule.nice` (`edge.nightly.priority.lower_priority`), once at `--nice` and once at 0 to show
what the lowered priority buys.

    .venv/bin/python -m benchmarks.live_threads [--threads 0 1 2] [--fps 10] [--seconds 15]
        [--neighbours busy training] [--nice 10]
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
import torch.nn.functional as F

from benchmarks.common import describe_machine, run_record, write_results
from benchmarks.inference import SHAPE, THRESHOLD, prepared_inputs
from edge.config import ScheduleConfig
from edge.nightly.priority import lower_priority
from trainer.export import export_onnx
from trainer.model import CLASSES, CamClassifier
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


def _training(stop: multiprocessing.Event, turns: multiprocessing.Value, nice: int) -> None:
    """A nightly training's compute at the nightly loop's priority, counted in optimiser steps."""
    lower_priority(nice)
    torch.manual_seed(0)
    model = CamClassifier("resnet18", 16, None).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    images, labels = torch.randn(8, 3, 96, 128), torch.rand(8, len(CLASSES)).round()
    while not stop.is_set():
        loss = F.multilabel_soft_margin_loss(CamClassifier.logits(model(images)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with turns.get_lock():
            turns.value += 1


class Neighbour:
    """The neighbour's processes, started and stopped around one measurement: `busy` (one busy
    process per core) or `training` at `nice`."""

    def __init__(self, kind: str, nice: int = 0) -> None:
        if kind == "busy":  # pure Python: none of the parent's libraries run, so fork is safe
            context, count, target, args = multiprocessing.get_context("fork"), os.cpu_count() or 1, _busy, ()
            self.warm_turns = 50 * count
        else:  # torch in a forked child of a process that has run torch can hang: a fresh interpreter
            context, count, target, args = multiprocessing.get_context("spawn"), 1, _training, (nice,)
            self.warm_turns = 2
        self.stop = context.Event()
        self.turns = context.Value("q", 0)
        self.workers = [
            context.Process(target=target, args=(self.stop, self.turns, *args), daemon=True)
            for _ in range(count)
        ]

    def __enter__(self) -> Neighbour:
        for worker in self.workers:
            worker.start()
        deadline = time.monotonic() + 120
        while self.turns.value < self.warm_turns and time.monotonic() < deadline:
            time.sleep(0.05)  # the workers running before the clock starts
        self.started, self.turns_at_start = time.monotonic(), self.turns.value
        return self

    def rate(self) -> float:
        return (self.turns.value - self.turns_at_start) / (time.monotonic() - self.started)

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=30)


def neighbour_alone(kind: str, nice: int, seconds: float) -> float:
    """The neighbour's turns per second with no live model beside it."""
    with Neighbour(kind, nice) as neighbour:
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


def _neighbours(kinds: list[str], nice: int) -> list[tuple[str, str, int]]:
    """(condition, kind, nice) per neighbour measured."""
    conditions = []
    for kind in kinds:
        if kind == "busy":
            conditions.append(("busy neighbour", "busy", 0))
        else:
            conditions += [
                (f"training, nice {level}", "training", level) for level in dict.fromkeys([nice, 0])
            ]
    return conditions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1, 2], help="live.threads values")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--neighbours", nargs="+", choices=["busy", "training"], default=["busy", "training"])
    parser.add_argument("--nice", type=int, default=ScheduleConfig().nice, help="the training's niceness")
    args = parser.parse_args()
    print(f"{describe_machine()}: ResNet-18 at {SHAPE[1]}x{SHAPE[0]}, {args.fps} fps", flush=True)
    inputs = prepared_inputs(8)
    torch.manual_seed(0)
    conditions = _neighbours(args.neighbours, args.nice)
    alone_rates = {(kind, nice): neighbour_alone(kind, nice, args.seconds) for _, kind, nice in conditions}
    for (kind, nice), rate in alone_rates.items():
        if rate == 0:
            parser.error(f"the {kind} neighbour (nice {nice}) did no turn in {args.seconds} s alone: "
                         "nothing to compare with; give it more --seconds or an idle machine")  # fmt: skip
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
            for condition, kind, nice in conditions:
                with Neighbour(kind, nice) as neighbour:
                    figures = paced(session, inputs, args.fps, args.seconds)
                    share = neighbour.rate() / alone_rates[kind, nice]
                rows.append({"session": setting, "condition": condition, **figures,
                             "neighbour_work": round(share, 3)})  # fmt: skip
                print(rows[-1], flush=True)
    print(f"\n{'session':>31} {'condition':>18} {'ms p50':>7} {'ms p99':>7} {'over period':>11} "
          f"{'cores used':>10} {'neighbour work':>14}")  # fmt: skip
    for row in rows:
        work = row.get("neighbour_work", "-")
        print(f"{row['session']:>31} {row['condition']:>18} {row['ms_p50']:>7} {row['ms_p99']:>7} "
              f"{row['over_period']:>11} {row['cores_used']:>10} {work:>14}")  # fmt: skip
    write_results("live_threads", rows)
    write_results("live_threads_run", run_record(**vars(args), neighbour_alone_rates={
        f"{kind}, nice {nice}": round(rate, 2) for (kind, nice), rate in alone_rates.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
