"""Training throughput per method: frames (training samples) per second with every loss term on.

Each method trains two epochs on the same small simulated manifest; the second epoch, where the
spatial and temporal weights are non-zero, is timed. A frame here is one training sample: its
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
            settings = TrainSettings(
                method=method, backbone=args.backbone, image_size=args.image_size, epochs=2,
                batch_size=args.batch_size, weights=None,
            )  # fmt: skip
            run = Path(folder) / method
            train(manifest, settings, run, cache_dir=Path(folder) / "cache", progress=False)
            second = json.loads((run / "epochs.jsonl").read_text().splitlines()[1])
            rows.append({"method": method, "frames_per_s": second["frames_per_s"], "device": device})
            print(f"{method:>10}: {second['frames_per_s']:.1f} frames/s", flush=True)
    machine = describe_machine() + (f", {torch.cuda.get_device_name()}" if device == "cuda" else "")
    setup = f"{args.backbone} at {args.image_size} px, batch {args.batch_size}"
    print(f"\ntraining throughput, {setup}, on {machine}")
    record = run_record(**vars(args), rows=rows)
    record["machine"] = machine
    write_results("train_speed", record)


if __name__ == "__main__":
    main()
