"""Training throughput per method: frames (training samples) per second with every loss term on.

Each method trains two epochs on the same small simulated manifest, in full precision and then with
mixed precision (`amp`: bfloat16 on a CPU with bfloat16 arithmetic, float16 on CUDA); the second
epoch, where the spatial and temporal weights are non-zero, is timed. A frame here is one training sample: its
triplet, its tiles and the backward pass.

    .venv/bin/python -m benchmarks.train_speed [--image-size 128] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from benchmarks.common import describe_machine, run_record, write_results
from edge.simulator.dataset import write_simulated_manifest
from trainer.train import TrainSettings, train

METHODS = ("cam", "puzzlecam", "temporal", "ours")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_simulated_manifest(
            Path(folder) / "data", frames=16, size=(160, 120), sequences=2, masked_before=1
        )
        for method in METHODS:
            for amp in (False, True):  # full precision, then mixed (bfloat16 on a CPU that has it)
                settings = TrainSettings(
                    method=method, backbone=args.backbone, image_size=args.image_size, epochs=2,
                    batch_size=args.batch_size, weights=None, amp=amp,
                )  # fmt: skip
                run = Path(folder) / f"{method}-{amp}"
                train(manifest, settings, run, cache_dir=Path(folder) / "cache", progress=False)
                second = json.loads((run / "epochs.jsonl").read_text().splitlines()[1])
                precision = json.loads((run / "metrics.json").read_text())["mixed_precision"] or "float32"
                rows.append({"method": method, "precision": precision, "frames_per_s": second["frames_per_s"],
                             "device": device})  # fmt: skip
                print(f"{method:>10} {precision:>9}: {second['frames_per_s']:.1f} frames/s", flush=True)
    machine = describe_machine() + (f", {torch.cuda.get_device_name()}" if device == "cuda" else "")
    setup = f"{args.backbone} at {args.image_size} px, batch {args.batch_size}"
    print(f"\ntraining throughput, {setup}, on {machine}")
    record = run_record(**vars(args), rows=rows)
    record["machine"] = machine
    write_results("train_speed", record)


if __name__ == "__main__":
    main()
