"""Peak memory of `beltcam train` and `beltcam eval` against footage length: it must stay flat.

Simulated 1280x720 footage at 10 fps per camera, 1, 5 and 20 minutes of it, in 5-minute sequences
(the recorder's default segment), plus a masked C1 sequence to evaluate on. One minute of unique
frames per camera is rendered and the manifests cycle through it: what the trainer holds depends on
how many frames of what size it reads, not on what they show. Each command runs in a fresh process
whose peak resident set size (`ru_maxrss` of its children, read by a wrapper process) is recorded.

    .venv/bin/python -m benchmarks.train_memory [--minutes 1 5 20] [--image-size 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

from benchmarks.common import describe_machine, run_record, write_results
from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera

FPS = 10.0
SIZE = (1280, 720)
UNIQUE_S = 60.0
SEGMENT_FRAMES = 3000  # 5 minutes at 10 fps
MASKED_FRAMES = 30

# runs `beltcam ARGS...` as a child and prints the child's peak RSS in kB
WRAPPER = (
    "import resource, subprocess, sys\n"
    "command = [sys.executable, '-m', 'edge.cli', *sys.argv[1:]]\n"
    "done = subprocess.run(command, capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr[-3000:] if done.returncode else '')\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def render(folder: Path) -> dict[str, list[str]]:
    """One minute of unique frames per camera (JPEG, as the recorder writes them) and C1's masks."""
    simulator = SimulatorConfig(realtime=False)
    paths: dict[str, list[str]] = {"c1": [], "c2": [], "masks": []}
    for camera_id in ("c1", "c2"):
        camera = SimulatedCamera(
            CameraConfig(id=camera_id, kind="simulated", resolution=SIZE, fps=FPS), simulator
        )
        (folder / camera_id).mkdir(parents=True)
        for seq in range(int(UNIQUE_S * FPS)):
            frame = camera.frame_at(seq)
            path = folder / camera_id / f"{seq:05d}.jpg"
            cv2.imwrite(
                str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
            paths[camera_id].append(str(path))
            if camera_id == "c1" and seq < MASKED_FRAMES:
                mask = path.with_suffix(".mask.png")
                cv2.imwrite(str(mask), frame.truth.label_map)
                paths["masks"].append(str(mask))
        print(f"  rendered {len(paths[camera_id])} unique {camera_id} frames", flush=True)
    return paths


def write_manifest(paths: dict[str, list[str]], minutes: float, out: Path) -> Path:
    total = int(minutes * 60 * FPS)
    sequences = []
    for camera_id, label in (("c1", "before"), ("c2", "after")):
        unique = paths[camera_id]
        for start in range(0, total, SEGMENT_FRAMES):
            count = min(SEGMENT_FRAMES, total - start)
            frames = [
                {"path": unique[(start + k) % len(unique)], "time_s": (start + k) / FPS} for k in range(count)
            ]
            sequences.append(
                {"id": f"{camera_id}-{start}", "camera": camera_id, "label": label, "frames": frames}
            )
    masked = [
        {"path": paths["c1"][k], "mask": paths["masks"][k], "time_s": k / FPS} for k in range(MASKED_FRAMES)
    ]
    sequences.append({"id": "c1-masked", "camera": "c1", "label": "before", "frames": masked})
    out.write_text(json.dumps({"version": 1, "root": "/", "sequences": sequences}), encoding="utf-8")
    return out


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one beltcam command in a fresh process."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"beltcam {args[0]} failed:\n{done.stderr}")
    return int(done.stdout.strip().splitlines()[-1]) / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0, 20.0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--method", default="ours")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--samples-per-epoch", type=int, default=64)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        paths = render(folder / "frames")
        site = folder / "site.yaml"
        site.write_text(yaml.safe_dump({
            "cameras": [
                {"id": c, "kind": "simulated", "resolution": list(SIZE), "fps": FPS} for c in ("c1", "c2")
            ],
            "storage": {"data_dir": str(folder / "data"), "min_free_mb": 1},
            "model": {"pretrained_weights": "random"},
        }))  # fmt: skip
        for minutes in args.minutes:
            manifest = write_manifest(paths, minutes, folder / f"manifest-{minutes:g}.json")
            run = folder / f"run-{minutes:g}"
            train = ["train", "--config", str(site), "--manifest", str(manifest), "--method", args.method,
                     "--backbone", args.backbone, "--image-size", str(args.image_size), "--epochs", "1",
                     "--samples-per-epoch", str(args.samples_per_epoch), "--out", str(run)]  # fmt: skip
            for command, argv in (
                ("train", train),
                ("eval", ["eval", "--config", str(site), "--run", str(run)]),
            ):
                peak, seconds = peak_rss_mb(argv)
                rows.append({"command": command, "minutes": minutes, "peak_rss_mb": round(peak, 1),
                             "seconds": round(seconds, 1)})  # fmt: skip
                print(
                    f"  {command:5s} {minutes:5g} min: peak RSS {peak:7.1f} MB ({seconds:.0f} s)", flush=True
                )
    print(f"\npeak memory against footage length ({describe_machine()}), 1280x720 at 10 fps per camera")
    print(f"{'command':>8} {'minutes':>8} {'peak RSS MB':>12} {'seconds':>8}")
    for row in rows:
        print(f"{row['command']:>8} {row['minutes']:8g} {row['peak_rss_mb']:12.1f} {row['seconds']:8.1f}")
    for command in ("train", "eval"):
        peaks = [r["peak_rss_mb"] for r in rows if r["command"] == command]
        print(f"{command}: largest / smallest peak = {max(peaks) / min(peaks):.2f}")
    write_results("train_memory", rows)
    write_results("train_memory_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
