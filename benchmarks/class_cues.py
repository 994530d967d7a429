"""What the classifier's image-level decision follows (tracker issue 18): on a belt whose classes
differ only by shape, no method's maps separate the classes, yet the classifier tells C1 images from
C2 images. This trains the plain CAM classifier once and reports, per sequence, its `before` minus
`after` logit on foreground-only frames and the frames' foreground share, their correlation over all
frames, and its raw `before` and `after` maps on the illegal and on the legal pixels of the masked
C1 frames (a pixel is called illegal where `before`, normalised, beats `after`).

A decision that follows the foreground share learnt "more objects: C1" (C1 always holds more objects
than C2, whose illegal ones the sorter took): a cue on every object, not on the illegal ones.

    .venv/bin/python -m benchmarks.class_cues [--belt standard] [--sim classes_differ_by=shape ...]
        [--seed 0] [--epochs 6] [--image-size 128] [--out class_cues]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import describe_machine, mean_known, run_record, simulator_setting, write_results
from edge.simulator.belts import BELTS, belt_settings
from edge.simulator.dataset import write_simulated_manifest
from trainer.cams import input_batch
from trainer.dataset import PreparedSequence, prepare_dataset, read_mask
from trainer.manifest import load_manifest
from trainer.model import CamClassifier
from trainer.train import TrainSettings, load_run_model, run_input_shape, train

MAP_ON = ("before_on_illegal", "before_on_legal", "after_on_illegal", "after_on_legal")


def _sequence_cues(model: CamClassifier, sequence: PreparedSequence) -> dict:
    """Logit gaps and foreground shares per frame; raw `before` maps on illegal and legal pixels."""
    foreground = sequence.foreground[:]
    frames = np.where(foreground[..., None], sequence.frames[:], 0).astype(np.uint8)
    with torch.no_grad():
        maps = model(input_batch(frames))
        logits = CamClassifier.logits(maps).numpy()
    on: dict[str, list[float]] = {key: [] for key in MAP_ON}
    for index, mask_path in enumerate(sequence.mask_paths):
        if mask_path is None:
            continue
        truth = read_mask(mask_path, sequence.original_size)
        raw = F.interpolate(F.relu(maps[index : index + 1, :2]), size=truth.shape, mode="bilinear")[0].numpy()
        for key in MAP_ON:
            kind, pixels = key.split("_on_")
            region = truth == (1 if pixels == "illegal" else 2)
            if region.any():
                on[key].append(float(raw[0 if kind == "before" else 1][region].mean()))
    return {
        "id": sequence.id, "label": sequence.label,
        "logit_gap": (logits[:, 0] - logits[:, 1]).tolist(),
        "foreground_share": foreground.reshape(len(frames), -1).mean(axis=1).tolist(),
        "maps_on": {key: float(np.mean(values)) if values else None for key, values in on.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--belt", choices=list(BELTS), default="standard")
    parser.add_argument("--sim", nargs="+", type=simulator_setting, default=[], metavar="FIELD=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--out", default="class_cues", help="results/<OUT>.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_simulated_manifest(
            folder / "data", frames=16, size=(160, 120), sequences=4, masked_before=3, seed=args.seed,
            fps=4.0, objects_per_m=6.0, belt={**belt_settings(args.belt), **dict(args.sim)},
        )  # fmt: skip
        settings = TrainSettings(
            method="cam", backbone="resnet18", image_size=args.image_size, epochs=args.epochs,
            batch_size=16, seed=args.seed, weights="random",
        )  # fmt: skip
        train(manifest, settings, folder / "run", cache_dir=folder / "cache", progress=False)
        model, _ = load_run_model(folder / "run")
        model.eval()
        loaded, base = load_manifest(manifest)
        shape = run_input_shape(folder / "run")
        sequences = prepare_dataset(loaded, base, shape, "dis", settings.foreground, folder / "cache", False)
        rows = [_sequence_cues(model, sequence) for sequence in sequences]
    gaps = np.concatenate([row["logit_gap"] for row in rows])
    shares = np.concatenate([row["foreground_share"] for row in rows])
    correlation = round(float(np.corrcoef(gaps, shares)[0, 1]), 3)
    maps_on = {key: mean_known([row["maps_on"][key] for row in rows]) for key in MAP_ON}
    print(f"\nclass cues on the {args.belt} belt {dict(args.sim)} ({describe_machine()}), seed {args.seed}")
    print(f"{'sequence':>9} {'label':>7} {'before-after logit':>19} {'foreground share':>17}")
    for row in rows:
        print(f"{row['id']:>9} {row['label']:>7} {np.mean(row['logit_gap']):19.2f} "
              f"{np.mean(row['foreground_share']):17.3f}")  # fmt: skip
    print(f"correlation of the logit gap with the foreground share, all frames: {correlation}")
    print("raw maps (ReLU, before normalisation) on the masked C1 frames: " + ", ".join(
        f"{key.replace('_', ' ')} {value}" for key, value in maps_on.items()))  # fmt: skip
    summary = {
        "belt": args.belt, "sim": dict(args.sim), "seed": args.seed, "correlation": correlation,
        "maps_on": maps_on, "sequences": rows,
    }  # fmt: skip
    write_results(args.out, summary)
    write_results(f"{args.out}_run", run_record(**{k: v for k, v in vars(args).items() if k != "sim"},
                                                sim=dict(args.sim)))  # fmt: skip


if __name__ == "__main__":
    main()
