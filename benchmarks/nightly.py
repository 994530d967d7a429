"""A full simulated night on this machine: what each stage of `beltcam nightly` takes, and what
training beside the agent costs the live path.

1. `beltcam demo` records the simulated belt (C1/C2 320x240 at 10 fps) with the starter model live.
2. `beltcam run` alone: the live path's frame rate and latency with nothing else running.
3. `beltcam nightly --nice` (as the agent's timer starts it: CPU niceness, idle I/O class) and, while
   it trains, `beltcam run` again: the same figures during training. The night ends as it ends
   (promoted, rejected), with its stages timed.

    .venv/bin/python -m benchmarks.nightly [--record-s 60] [--live-s 40] [--epochs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import describe_machine, run_record, write_results
from edge.cli.main import main as beltcam

LIVE_KEYS = ("frames_captured", "frames_processed", "frames_skipped", "latency_p50_ms", "latency_p99_ms",
             "mask_latency_p50_ms", "mask_latency_p99_ms", "late")  # fmt: skip


def site(folder: Path, epochs: int) -> Path:
    path = folder / "beltcam.yaml"
    config = {
        "cameras": [
            {"id": c, "kind": "simulated", "resolution": [320, 240], "fps": 10} for c in ("c1", "c2")
        ],
        "storage": {"data_dir": "data", "min_free_mb": 1},
        "simulator": {"seed": 0},
        "model": {"backbone": "resnet18", "image_size": 128, "pretrained_weights": "random"},
        "calibration_file": "data/calibration.yaml",
        "schedule": {"min_new_frames": 100, "min_free_gb": 0, "epochs": epochs, "samples_per_epoch": 400},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def agent(command: str, config: Path, seconds: float, report: Path) -> dict:
    """`beltcam demo|run` in this process, quietly; its scoreboard."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = beltcam(
            [command, "--config", str(config), "--duration", str(seconds), "--report", str(report)]
        )
    if code != 0:
        raise RuntimeError(f"beltcam {command} exited {code}")
    found = json.loads(report.read_text())
    return {
        **{k: found[k] for k in LIVE_KEYS},
        "processed_fps": round(found["frames_processed"] / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record-s", type=float, default=60.0, help="footage the night learns from")
    parser.add_argument("--live-s", type=float, default=40.0, help="each live measurement")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = site(Path(tmp), args.epochs)
        started = time.monotonic()
        agent("demo", config, args.record_s, Path(tmp) / "demo.json")
        demo_s = time.monotonic() - started
        print(f"demo (starter model + {args.record_s:g} s recorded): {demo_s:.0f} s", flush=True)
        idle = agent("run", config, args.live_s, Path(tmp) / "idle.json")
        print("live alone:", idle, flush=True)
        night = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "nightly", "--config", str(config), "--nice", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        night_started = time.monotonic()
        during = agent("run", config, args.live_s, Path(tmp) / "during.json")
        live_ended = time.monotonic() - night_started
        output, _ = night.communicate()
        night_s = time.monotonic() - night_started
        print("live while training:", during, flush=True)
    report = json.loads(output.strip().splitlines()[-1])
    results = {
        "machine": describe_machine(),
        "night_outcome": report["outcome"],
        "night_reason": report["reason"],
        "night_wall_s": round(night_s, 1),
        "stage_seconds": report["stage_seconds"],
        "live_run_within_night": live_ended <= night_s,
        "live_alone": idle,
        "live_during_training": during,
        "processed_fps_ratio": round(during["processed_fps"] / idle["processed_fps"], 3),
    }
    print(f"\na simulated night ({describe_machine()}), ResNet-18 at 128 px, {args.epochs} epochs")
    print(f"night: {report['outcome']} in {night_s:.0f} s; stages: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in report["stage_seconds"].items()))  # fmt: skip
    print(f"{'live path':>22} {'frames/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'skipped':>7} {'late':>4}")
    for name, row in (("alone", idle), ("while training", during)):
        p50, p99 = row["latency_p50_ms"], row["latency_p99_ms"]
        print(f"{name:>22} {row['processed_fps']:>8} {p50!s:>7} {p99!s:>7} "
              f"{row['frames_skipped']:>7} {row['late']:>4}")  # fmt: skip
    print(f"frame rate while training / alone: {results['processed_fps_ratio']}")
    write_results("nightly", results)
    write_results("nightly_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
