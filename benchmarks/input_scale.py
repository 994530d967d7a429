"""What input scale the CAMs need: mIoU of `ours` against the network input's long side.

The same simulated manifest (frames rendered at 640x480, so every input size below is a real
downscale) trains `ours` at each input size with the same epochs, batch and seed; each run reports
mIoU on held-out masked frames and its training throughput, from which the samples one 6-hour night
on this machine can train follow.

    .venv/bin/python -m benchmarks.input_scale [--sizes 128 256 384 512] [--epochs 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import describe_machine, run_record, training_progress, write_results
from edge.simulator.dataset import write_simulated_manifest
from trainer.train import TrainSettings, run_input_shape, train

NIGHT_S = 6 * 3600


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="ours")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    rows = []
    with training_progress(), tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        manifest = write_simulated_manifest(
            folder / "data", frames=16, size=(640, 480), sequences=4, masked_before=3, seed=args.seed,
            fps=4.0, objects_per_m=6.0,
        )  # fmt: skip
        for size in args.sizes:
            settings = TrainSettings(
                method=args.method, backbone=args.backbone, image_size=size, epochs=args.epochs,
                batch_size=args.batch_size, seed=args.seed, weights="random",
            )  # fmt: skip
            started = time.monotonic()
            result = train(
                manifest, settings, folder / f"run-{size}", cache_dir=folder / "cache", progress=False
            )
            height, width = run_input_shape(folder / f"run-{size}")
            row = {
                "image_size": size,
                "input": f"{width}x{height}",
                "miou": result.evaluation.miou,
                "train_frames_per_s": round(result.frames_per_s, 2),
                "night_samples": round(result.frames_per_s * NIGHT_S),
                "minutes": round((time.monotonic() - started) / 60, 1),
            }
            rows.append(row)
            print(f"  {size:4d} ({row['input']}): mIoU {row['miou']:6.2f}, {row['train_frames_per_s']:.1f} "
                  f"samples/s ({row['minutes']} min)", flush=True)  # fmt: skip
    print(
        f"\n{args.method} against input size ({describe_machine()}), seed {args.seed}, {args.epochs} epochs"
    )
    print(f"{'size':>5} {'input':>9} {'mIoU':>7} {'samples/s':>10} {'samples per 6 h night':>22}")
    for row in rows:
        size, shape, speed = row["image_size"], row["input"], row["train_frames_per_s"]
        print(f"{size:5d} {shape:>9} {row['miou']:7.2f} {speed:10.1f} {row['night_samples']:22d}")
    write_results("input_scale", rows)
    write_results("input_scale_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
