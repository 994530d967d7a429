"""The classes' ceiling at the segmentation benchmark's budget (tracker issue 18): can the trainer's
network tell illegal from legal objects at all from this much footage, when it is given every
pixel's class? The same trunk (ResNet-18, output stride 16, random initialisation) and input size as
`benchmarks/segmentation.py`, trained with pixel labels on as many C1 frames as the weak methods
see there, scored on held-out masked C1 sequences as balanced accuracy over the foreground pixels
(the mean of the illegal and the legal pixels' recall: 0.5 is chance). A weakly supervised method
can only lose against this, so a belt whose ceiling is near 0.5 cannot rank the methods.

    .venv/bin/python -m benchmarks.learnability [--belt standard|crowded|hard] [--sim FIELD=VALUE ...]
        [--sequences 4] [--seeds 0] [--epochs 8] [--image-size 128] [--out learnability]

Each run adds or replaces its row (by belt, settings and footage) in results/<OUT>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import RESULTS_DIR, describe_machine, simulator_setting, write_results
from edge.simulator.belts import BELTS, belt_settings
from edge.simulator.dataset import write_simulated_manifest
from trainer.cams import input_batch
from trainer.dataset import PreparedSequence, prepare_dataset, read_mask
from trainer.input_shape import manifest_input_shape
from trainer.manifest import load_manifest
from trainer.model import CamClassifier
from trainer.preprocess import ForegroundSettings

ILLEGAL, LEGAL = 1, 2  # the simulator's label map


def _labelled(sequences: list[PreparedSequence]) -> tuple[np.ndarray, torch.Tensor]:
    """Frames at training size and their label maps at source size (0 belt, 1 illegal, 2 legal)."""
    frames = np.concatenate([s.frames[:] for s in sequences])
    masks = [read_mask(path, s.original_size) for s in sequences for path in s.mask_paths]
    return frames, torch.from_numpy(np.stack(masks)).long()


def _class_maps(model: nn.Module, frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(model(input_batch(frames)), size=size, mode="bilinear", align_corners=False)


def _balanced_accuracy(model: nn.Module, frames: np.ndarray, truth: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        maps = [_class_maps(model, frames[i : i + 8], truth.shape[-2:]) for i in range(0, len(frames), 8)]
        called = torch.cat(maps).argmax(1) + 1
    model.train()
    recalls = [float((called[truth == c] == c).float().mean()) for c in (ILLEGAL, LEGAL)]
    return statistics.mean(recalls)


def run_seed(seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """Per epoch: held-out balanced accuracy over the foreground pixels."""
    manifest = write_simulated_manifest(
        folder / "data", frames=args.frames, size=tuple(args.frame_size), sequences=1,
        masked_before=args.sequences + args.masked, seed=seed, fps=4.0, objects_per_m=6.0,
        belt={**belt_settings(args.belt), **dict(args.sim)},
    )  # fmt: skip
    loaded, base = load_manifest(manifest)
    shape = manifest_input_shape(loaded, base, args.image_size, 32, keep_aspect=True)
    masked = [s for s in prepare_dataset(loaded, base, shape, "dis", ForegroundSettings(), None, False)
              if any(s.mask_paths)]  # fmt: skip
    train_frames, train_truth = _labelled(masked[args.masked :])
    test_frames, test_truth = _labelled(masked[: args.masked])
    torch.manual_seed(seed)
    model = CamClassifier(args.backbone, 16, weights=None)
    model.head = nn.Conv2d(model.head.in_channels, 2, kernel_size=1)  # illegal, legal
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    curve, started = [], time.perf_counter()
    for epoch in range(args.epochs):
        for batch in torch.randperm(len(train_frames)).split(args.batch_size):
            truth = train_truth[batch]
            maps = _class_maps(model, train_frames[batch.numpy()], truth.shape[-2:]).permute(0, 2, 3, 1)
            objects = truth > 0
            loss = F.cross_entropy(maps[objects], truth[objects] - 1)  # only the objects' class is asked
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(round(_balanced_accuracy(model, test_frames, test_truth), 3))
        print(f"  seed {seed} epoch {epoch + 1}: held-out balanced accuracy {curve[-1]:.3f}", flush=True)
    return {"seed": seed, "curve": curve, "final": curve[-1], "seconds": round(time.perf_counter() - started)}


def _kept_rows(path: Path, row: dict) -> list[dict]:
    """The file's other rows: a row is replaced by a run of the same belt, settings and footage."""
    key = ("belt", "sim", "training_frames", "image_size", "epochs")
    old = json.loads(path.read_text())["rows"] if path.is_file() else []
    return [r for r in old if tuple(r.get(k) for k in key) != tuple(row[k] for k in key)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--belt", choices=list(BELTS), default="standard")
    parser.add_argument("--sim", nargs="+", type=simulator_setting, default=[], metavar="FIELD=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16, help="frames per sequence")
    parser.add_argument("--frame-size", type=int, nargs=2, default=[160, 120], metavar=("W", "H"))
    parser.add_argument("--sequences", type=int, default=4, help="labelled C1 training sequences")
    parser.add_argument("--masked", type=int, default=3, help="held-out masked C1 sequences")
    parser.add_argument("--out", default="learnability", help="results/<OUT>.json")
    args = parser.parse_args()
    seeds = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            seeds.append(run_seed(seed, args, Path(folder)))
    finals = [s["final"] for s in seeds]
    row = {
        "belt": args.belt, "sim": dict(args.sim), "training_frames": args.sequences * args.frames,
        "frame_size": args.frame_size, "image_size": args.image_size, "epochs": args.epochs,
        "balanced_accuracy": round(statistics.mean(finals), 3), "seeds": seeds,
        "machine": describe_machine(), "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    print(f"\n{args.belt} belt {dict(args.sim)}, {row['training_frames']} labelled C1 frames "
          f"{args.frame_size[0]}x{args.frame_size[1]}, {args.image_size} px, {args.epochs} epochs: "
          f"held-out balanced accuracy {row['balanced_accuracy']:.3f} (seeds {finals})")  # fmt: skip
    rows = [*_kept_rows(RESULTS_DIR / f"{args.out}.json", row), row]
    write_results(args.out, {"rows": rows})


if __name__ == "__main__":
    main()
