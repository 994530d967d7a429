"""The agent end to end on the simulated belt, judged by ground truth: `beltcam run` itself, in real
time (10 fps, 640x480 cameras), for models trained by `ours`, `puzzlecam` and `cam`, each with and
without inference-time fusion (by belt motion or by optical flow), at two belt speeds, over several seeds.

Each model is the demo's starter recipe (ResNet-18, 128 px long side, 4 epochs on rendered frames of
another stretch of belt) with the method changed. The method `truth` is no model: the live path takes
the simulator's own label map of each frame (perfect masks), so its row is what the tracker, the
planner and the valves lose by themselves (collateral hits of touching objects, merged patches): the
floor under every model's false ejections. Each run is a fresh data directory with the
simulator's calibration and that model live; its scoreboard (`--report`) gives:
  recall, false ejections   shares of the illegal / legal objects that passed the ejector line and were hit
  late                      commands whose fire time had passed before they could be sent
  latency p50/p99           capture of a frame to the command of an object first seen in it, ms
  processed/captured        C1 frames segmented over frames captured

    .venv/bin/python -m benchmarks.endtoend [--seeds 0 1] [--minutes 1] [--speeds 250 500]
        [--methods ours puzzlecam cam truth] [--fusions belt flow none] [--paths whole spare+split]
        [--belt standard|hard] [--train-sequences 4] [--train-epochs 4] [--out endtoend]

`--belt hard` (edge/simulator/belts.py) runs the site, and trains its models, on the hard belt: one
palette for both classes, a crowded belt, flickering lamps. Rows carry their `belt`. Its classes are
learnt only from about sixteen times the starter's footage (benchmarks/README.md, learnability):
`--train-sequences 64` trains the models on that. `--methods` takes the variants of
trainer/variants.py too (`ours_nopcls_present`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import yaml

from benchmarks.common import describe_machine, mean_known, run_record, write_results
from edge.cli.main import main as beltcam
from edge.config import load_config
from edge.live.path import LivePath
from edge.nightly.starter import STARTER, STARTER_SEQUENCES, starter_model
from edge.simulator.belts import BELTS, belt_settings
from edge.sources.base import Frame
from edge.store.frame_store import FrameStore
from edge.store.registry import add_model, promote
from trainer.variants import VARIANTS

FUSIONS = ("belt", "flow", "none")
# bridge.spare_legal, live.split_classes, live.outline_band_mm, bridge.spare_clearance_mm, live.belt_speed
PATHS = {
    "whole": (False, False, 0.0, 0.0, "calibrated"),
    "spare+split": (True, True, 0.0, 0.0, "calibrated"),
    "outline": (True, True, 5.0, 5.0, "measured"),
}
PATHS_HELP = (
    "whole: pulses over whole object boxes, touching objects one patch; spare+split: touching "
    "illegal/legal regions split, lanes of legal objects' boxes spared; outline (the default settings): "
    "the same, lanes fired and spared by each object's outline, 5 mm clear of legal objects, timed by "
    "the belt speed the tracks show"
)
TRUTH = "truth"  # the simulator's label maps in place of a model: the floor of the rest of the path
CAMERAS = ("c1", "c2")
KEYS = ("recall", "false_ejections", "late", "latency_p50_ms", "latency_p99_ms")


def site(
    folder: Path,
    seed: int,
    speed: float,
    fusion: str,
    spare_legal: bool = True,
    split: bool = True,
    outline_band_mm: float = 5.0,
    clearance_mm: float = 5.0,
    belt_speed: str = "measured",
    belt: str = "standard",
) -> Path:
    path = folder / "beltcam.yaml"
    config = {
        "cameras": [{"id": c, "kind": "simulated", "resolution": [640, 480], "fps": 10} for c in CAMERAS],
        "storage": {"data_dir": "data", "min_free_mb": 1},
        "simulator": {"seed": seed, "belt_speed_mm_s": speed, **belt_settings(belt)},
        "model": {"backbone": "resnet18", "pretrained_weights": "random"},
        "calibration_file": "data/calibration.yaml",
        "live": {
            "fusion": fusion,
            "split_classes": split,
            "outline_band_mm": outline_band_mm,
            "belt_speed": belt_speed,
        },
        "bridge": {"spare_legal": spare_legal, "spare_clearance_mm": clearance_mm},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _truth_labels(live: LivePath, frame: Frame) -> np.ndarray | None:
    """The simulator's label map of the frame, counted as the model's would be (method `truth`)."""
    live.stats.processed += 1
    if live.stats.first_frame_ns is None:
        live.stats.first_frame_ns = frame.capture_ns
    live.stats.mask_latency_ms.append((time.monotonic_ns() - frame.capture_ns) / 1e6)
    return frame.truth.label_map


def one_run(
    model: Path,
    folder: Path,
    seed: int,
    speed: float,
    fusion: str,
    seconds: float,
    truth: bool,
    path: tuple,
    belt: str,
) -> dict:
    """`path`: one of PATHS' settings of the planner and the tracker."""
    config = site(folder, seed, speed, fusion, *path, belt=belt)
    store = FrameStore.from_config(load_config(config).storage)
    promote(store, add_model(store, model))  # `truth` too: the agent starts only with a live model
    store.close()
    report = folder / "report.json"
    masks = mock.patch.object(LivePath, "_segment", _truth_labels) if truth else contextlib.nullcontext()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), masks:
        code = beltcam(["run", "--config", str(config), "--duration", str(seconds), "--report", str(report)])
    if code != 0:
        raise RuntimeError(f"beltcam run exited {code} ({folder})")
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[250.0, 500.0])
    methods = [*VARIANTS, TRUTH]  # gradcam is never exported: no live model
    parser.add_argument("--methods", nargs="+", choices=methods, default=["ours", "puzzlecam", "cam", TRUTH])
    parser.add_argument("--fusions", nargs="+", choices=FUSIONS, default=list(FUSIONS))
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS), help=PATHS_HELP)
    parser.add_argument("--belt", choices=list(BELTS), default="standard", help="which simulated belt")
    parser.add_argument(
        "--train-sequences", type=int, default=STARTER_SEQUENCES,
        help="the models' training sequences per camera (the starter's; the hard belt's classes need 64)",
    )  # fmt: skip
    parser.add_argument("--train-epochs", type=int, default=STARTER["epochs"], help="the models' epochs")
    parser.add_argument("--out", default="endtoend", help="results/<OUT>.json and results/<OUT>_run.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        training_site = load_config(site(root, 100, 250.0, "belt", belt=args.belt))
        models = {}
        for method in (m for m in args.methods if m != TRUTH):
            footage = {"sequences": args.train_sequences, "epochs": args.train_epochs}
            _, result = starter_model(training_site, root / f"model-{method}", method, **footage)
            models[method] = result.onnx_path
            print(f"trained {method}: threshold {result.evaluation.threshold:.2f}", flush=True)
        if TRUTH in args.methods:  # any model file: the agent loads one, the label maps are the truth's
            models[TRUTH] = (
                next(iter(models.values()), None)
                or starter_model(training_site, root / "model-truth", progress=False)[1].onnx_path
            )
        for method, fusion, path, speed in itertools.product(
            args.methods, args.fusions, args.paths, args.speeds
        ):
            if method == TRUTH and fusion != args.fusions[0]:
                continue  # no maps to fuse: the truth's label maps are used as they are
            runs = []
            for seed in args.seeds:
                folder = root / f"{method}-{fusion}-{path}-{speed:g}-{seed}"
                folder.mkdir()
                seconds = args.minutes * 60
                truth = method == TRUTH
                run = (models[method], folder, seed, speed, fusion, seconds, truth, PATHS[path], args.belt)
                runs.append(one_run(*run))
                print(method, fusion, path, speed, seed, {k: runs[-1][k] for k in KEYS}, flush=True)
            rows.append(
                {
                    "belt": args.belt, "method": method, "fusion": "none" if method == TRUTH else fusion,
                    "path": path, "speed_mm_s": speed, "train_sequences": args.train_sequences,
                    "train_epochs": args.train_epochs,
                    **{k: mean_known([r[k] for r in runs], 4) for k in KEYS},
                    "processed_over_captured": mean_known([r["frames_processed"] / r["frames_captured"]
                                                           for r in runs], 4),
                    "stage_p50_ms": {stage: mean_known([r["live_stage_ms"][stage]["p50"] for r in runs], 2)
                                     for stage in runs[0]["live_stage_ms"]},
                    "illegal_passed": sum(r["illegal_passed"] for r in runs),
                    "legal_passed": sum(r["legal_passed"] for r in runs),
                    "per_seed": runs,
                }
            )  # fmt: skip
    budget = f"{args.minutes:g} min x {len(args.seeds)} seeds"
    print(f"\nend to end on the {args.belt} simulated belt ({describe_machine()}), {budget}")
    print(f"{'method':>10} {'fusion':>6} {'path':>11} {'mm/s':>5} {'recall':>7} {'false ej':>8} {'late':>5} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'proc/capt':>9} {'segment':>7} {'track':>5} "
          f"{'turn':>5}")  # fmt: skip
    for r in rows:
        stage = r["stage_p50_ms"]
        print(f"{r['method']:>10} {r['fusion']:>6} {r['path']:>11} {r['speed_mm_s']:>5g} "
              f"{r['recall']!s:>7} {r['false_ejections']!s:>8} {r['late']!s:>5} {r['latency_p50_ms']!s:>7} "
              f"{r['latency_p99_ms']!s:>7} {r['processed_over_captured']!s:>9} {stage['segment']!s:>7} "
              f"{stage['track']!s:>5} {stage['frame']!s:>5}")  # fmt: skip
    write_results(args.out, rows)
    write_results(f"{args.out}_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
