"""The paper's Table 1 and Table 2 on the simulated belt: mIoU of illegal objects on held-out
`before` sequences, for every CAM method, over several seeds, with the same budget for each.

Methods (all trained on the same manifest, same backbone, image size, epochs and batch size):
  foreground  reference without a classifier: every foreground pixel called illegal
  gradcam   the paper's Grad-CAM baseline: its own softmax classifier (fc head), Grad-CAM on layer4
  f2f       Frame-to-Frame: that classifier's CAMs warped from t-1 and t+1 and fused by max
  cam       the classification-only classifier's own CAMs (the "none" column of Table 2)
  puzzlecam spatial coherence only
  temporal  temporal coherence only
  ours      spatial + temporal coherence, DIS optical flow
  ours_beltflow  the same with belt-motion flow from the simulator's calibration
  ours_c1_after  ours with C1 foreground labelled {before, after} (C1 also shows legal objects)
Ablations (issue 18; the rows above stay the paper's method):
  puzzlecam_nopcls, ours_nopcls  the tiles' maps are not classified (no L_pcls), only their L1 stays
  ours_meanfuse  the warped neighbours' CAMs fused by mean instead of maximum
  ours_present, ours_nopcls_present  L_spatial over the image's own classes' maps only (PuzzleCAM's
                 and the paper authors' code); with no L_pcls, the authors' own training setting
  cam_balanced, puzzlecam_balanced, ours_balanced  C1 and C2 samples drawn with the same spread of
                 foreground share, so the amount of foreground cannot tell them apart
  ours_temporal2  the temporal term's weight rising to 2 instead of the paper's 4
  ours_fixedtarget  L_temporal moves frame t's map only: the fused neighbours are a fixed target
  puzzlecam_1x2, puzzlecam_2x1  the puzzle cut into 1x2 / 2x1 tiles (twice as large) instead of 2x2
  cam_oneobject, puzzlecam_oneobject, ours_oneobject  one object per foreground sample (followed into
                 its neighbours by the flow), so the number of objects cannot tell C1 from C2
Every row is also scored with whole objects called (column `objects`, trainer/object_masks.py):
each foreground object, split where objects touch, gets one class from the maps inside it.

    .venv/bin/python -m benchmarks.segmentation [--seeds 0 1 2] [--epochs 8] [--image-size 128]
        [--frame-size 160 120] [--masked 9] [--belt standard|crowded|hard] [--sim FIELD=VALUE ...]
        [--rows cam ...] [--out NAME]

`--belt hard` (edge/simulator/belts.py): one palette for both classes, told apart by shape and
surface, a crowded belt, flickering lamps; its rows in segmentation.json were trained on
`--sequences 64` (and `--frame-size 320 240` at `--image-size 256`): on the default 4 its classes
are not learnable even with pixel labels (benchmarks/README.md). `--belt crowded`: the standard
belt's colours with touching objects. Each row carries its `belt` and `image_size`; the results
file keeps the rows of the other belts, other input scales and methods not run, so one file holds
every belt, scale and row (`benchmarks/merge_seeds.py` adds runs made one seed or row at a time).
`--sim` sets simulator fields over the belt's, to find which of the hard belt's features does what.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from benchmarks.common import (
    RESULTS_DIR,
    describe_machine,
    mean_known,
    run_record,
    simulator_setting,
    training_progress,
    write_results,
)
from benchmarks.paired import BySeed, print_paired
from edge.cli.common import number_type, positive_int
from edge.config import SimulatorConfig
from edge.simulator.belts import BELTS, belt_settings
from edge.simulator.dataset import write_simulated_manifest
from trainer.dataset import prepare_dataset
from trainer.evaluate import EvaluationResult, evaluate
from trainer.manifest import load_manifest
from trainer.train import TrainSettings, load_run_model, run_input_shape, train
from trainer.variants import CHANGES, variant_settings

WHERE_WRONG = (  # trainer.evaluate's pixel shares: found, and called illegal where it is not
    "illegal_found",
    "legal_near_illegal_called_illegal",
    "legal_elsewhere_called_illegal",
    "belt_called_illegal",
)
MEANS = (  # per-seed figures whose mean over the seeds a row carries
    "miou_object_threshold", "threshold", "miou_objects", "objects_threshold", "miou_best_threshold",
    "best_threshold", "object_threshold", "object_precision", "object_recall", *WHERE_WRONG,
)  # fmt: skip
PAPER = {"gradcam": 22.08, "f2f": 27.94, "cam": 24.08, "puzzlecam": 34.20, "temporal": 29.23, "ours": 37.84}


def _variant(name: str) -> tuple[str, str, str, bool, dict]:
    """The row of a named variant: the settings a site trains by that name."""
    settings = variant_settings(name)
    return name, str(settings.pop("method")), "dis", False, settings


# what each row records of the run that made it, beside belt and input scale
RUN_FIELDS = (
    "epochs",
    "sequences",
    "frames",
    "frame_size",
    "masked",
    "holdout_s",
    "backbone",
    "batch_size",
    "weights",
)

# (row name, method, flow, C1 foreground labelled {before, after}, other settings: ablations)
RUNS = [
    ("gradcam", "gradcam", "dis", False, {}),
    ("cam", "cam", "dis", False, {}),
    ("puzzlecam", "puzzlecam", "dis", False, {}),
    ("temporal", "temporal", "dis", False, {}),
    ("ours", "ours", "dis", False, {}),
    ("ours_beltflow", "ours", "belt", False, {}),
    ("ours_c1_after", "ours", "dis", True, {}),
    # issue 18's ablations a site can also train (trainer/variants.py): the tiles' classification loss
    # off (only their L1 stays), mean fusion
    *(_variant(name) for name in CHANGES),
    # C1 and C2 samples drawn with the same spread of foreground share (trainer/balance.py)
    ("cam_balanced", "cam", "dis", False, {"balance_foreground": True}),
    ("puzzlecam_balanced", "puzzlecam", "dis", False, {"balance_foreground": True}),
    ("ours_balanced", "ours", "dis", False, {"balance_foreground": True}),
    # the temporal term at half the paper's weight (b up to 2): on a crowded belt it costs at 4
    ("ours_temporal2", "ours", "dis", False, {"beta_max": 2.0}),
    # the fused neighbours a fixed target: the temporal term cannot pull the neighbours' maps too
    ("ours_fixedtarget", "ours", "dis", False, {"temporal_fixed_target": True}),
    # tiles twice as large: an object is cut half as often
    ("puzzlecam_1x2", "puzzlecam", "dis", False, {"puzzle_grid": (1, 2)}),
    ("puzzlecam_2x1", "puzzlecam", "dis", False, {"puzzle_grid": (2, 1)}),
    # one object per sample (trainer/one_object.py): the number of objects in a frame is no cue
    ("cam_oneobject", "cam", "dis", False, {"one_object": True}),
    ("puzzlecam_oneobject", "puzzlecam", "dis", False, {"one_object": True}),
    ("ours_oneobject", "ours", "dis", False, {"one_object": True}),
    # output stride 8 for the baselines too (ours_os8 is a variant, above): at 128 px input the
    # 16x12-cell maps that 256 px has at stride 16
    ("cam_os8", "cam", "dis", False, {"output_stride": 8}),
    ("puzzlecam_os8", "puzzlecam", "dis", False, {"output_stride": 8}),
]


def run_seed(seed: int, args: argparse.Namespace, folder: Path) -> tuple[dict[str, dict], dict[str, float]]:
    """Per row: the evaluation's figures (mIoU at the masks' threshold and at the object check's)."""
    manifest = write_simulated_manifest(
        folder / "data", frames=args.frames, size=tuple(args.frame_size), sequences=args.sequences,
        masked_before=args.masked, seed=seed, fps=4.0, objects_per_m=6.0, holdout_s=args.holdout_s,
        holdout_masks=True, belt={**belt_settings(args.belt), **dict(args.sim)},
    )  # fmt: skip
    belt = load_manifest(manifest)[0].belt
    scores: dict[str, dict] = {}
    speed: dict[str, float] = {}
    for name, *_ in RUNS:
        if name not in args.rows:
            continue
        settings = _settings(name, args, seed)
        started = time.monotonic()
        result = train(manifest, settings, folder / name, cache_dir=folder / "cache", progress=False)
        speed[name] = result.frames_per_s
        scores[name] = _figures(result.evaluation)
        _say(seed, name, scores[name], time.monotonic() - started)
        if name == "cam":  # the baselines read the plain CAM classifier, not an ablation of it
            model, _ = load_run_model(folder / name)
            loaded, base = load_manifest(manifest)
            shape = run_input_shape(folder / name)
            sequences = prepare_dataset(
                loaded, base, shape, settings.flow, settings.foreground, folder / "cache", False
            )
            for kind in ("f2f", "foreground"):
                scores[kind] = _figures(evaluate(model, sequences, kind, belt=belt))
                _say(seed, kind, scores[kind], None)
    return scores, speed


def _settings(row: str, args: argparse.Namespace, seed: int) -> TrainSettings:
    """What the trainer is given for one row and seed."""
    _, method, flow, c1_also_after, ablation = next(run for run in RUNS if run[0] == row)
    return TrainSettings(
        method=method, flow=flow, c1_also_after=c1_also_after, backbone=args.backbone,
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
        weights=args.weights, **ablation,
    )  # fmt: skip


non_negative_int = number_type(0, low_allowed=True, integer=True)
at_least_three = number_type(3, low_allowed=True, integer=True)  # whole sequences on both sides of the split


def _check_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every row's settings checked before the first one trains for minutes: a bad option is a usage
    error naming the option, not a traceback an hour into a run."""
    try:
        SimulatorConfig.model_validate({**belt_settings(args.belt), **dict(args.sim)})
    except ValidationError as exc:
        problem = exc.errors()[0]
        parser.error(f"--sim {problem['loc'][0]}: {problem['msg']} (belt {args.belt})")
    for row in args.rows:
        try:
            settings = _settings(row, args, seed=0)
        except ValidationError as exc:
            problem = exc.errors()[0]
            option = "--" + str(problem["loc"][0]).replace("_", "-")
            parser.error(f"{option}: {problem['msg']} (row {row})")
        if not settings.granularity_ok():
            parser.error(f"{settings.granularity_error()} (row {row})")


def _figures(evaluation: EvaluationResult) -> dict:
    check = evaluation.object_check or {}
    return {
        "miou": evaluation.miou,
        "threshold": evaluation.threshold,
        "miou_object_threshold": evaluation.miou_at_object_threshold,
        "object_threshold": check.get("threshold"),
        "object_precision": check.get("precision"),
        "object_recall": check.get("recall"),
        "objects": check.get("test_objects"),
        "miou_objects": evaluation.miou_objects,
        "objects_threshold": evaluation.objects_threshold,
        "miou_best_threshold": evaluation.miou_best_threshold,
        "best_threshold": evaluation.best_threshold,
        "validation_iou_by_threshold": evaluation.validation_iou_by_threshold,
        "test_miou_by_threshold": evaluation.test_miou_by_threshold,
        "validation_miou_by_threshold": evaluation.validation_miou_by_threshold,
        **{key: (evaluation.where_wrong or {}).get(key) for key in WHERE_WRONG},
    }


def _say(seed: int, name: str, figures: dict, seconds: float | None) -> None:
    took = f"  ({seconds:.0f} s)" if seconds is not None else ""
    if figures["object_threshold"] is None:  # held-out footage without an object to check
        check = "no object check"
    else:
        check = f"{figures['miou_object_threshold']:6.2f} at {figures['object_threshold']:.2f} (object check)"
    masks = f"mIoU {figures['miou']:6.2f} at {figures['threshold']:.2f} (masks)"
    if figures["miou_objects"] is not None:
        masks += f", {figures['miou_objects']:6.2f} at {figures['objects_threshold']:.2f} (whole objects)"
    if figures["miou_best_threshold"] is not None:
        masks += f", {figures['miou_best_threshold']:6.2f} at {figures['best_threshold']:.2f} (test's best)"
    print(f"  seed {seed} {name:14s} {masks}, {check}{took}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of every row")
    parser.add_argument("--image-size", type=int, default=128, help="the model's input, long side (px)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=positive_int, default=16, help="frames per sequence")
    parser.add_argument(
        "--frame-size", type=positive_int, nargs=2, default=[160, 120], metavar=("W", "H"),
        help="rendered frames (px)",
    )  # fmt: skip
    parser.add_argument(
        "--sequences", type=positive_int, default=4,
        help="training sequences per camera (the hard belt's rows in segmentation.json: 64)",
    )  # fmt: skip
    parser.add_argument(
        "--masked", type=at_least_three, default=9,
        help="held-out masked before sequences, at least 3 (a third choose the threshold, the rest are "
        "scored; with 3, the evaluation alone moved methods' per-seed differences by several points)",
    )  # fmt: skip
    parser.add_argument(
        "--holdout-s", type=float, default=20.0, help="held-out C1/C2 footage for the object check, seconds"
    )
    parser.add_argument(
        "--weights", default="random", help="'imagenet' (torch hub cache only), a .pth, or random"
    )
    parser.add_argument(
        "--belt",
        choices=list(BELTS),
        default="standard",
        help="which simulated belt (edge/simulator/belts.py)",
    )
    parser.add_argument(
        "--rows", nargs="+", choices=[name for name, *_ in RUNS], default=[name for name, *_ in RUNS],
        help="trained rows to run (f2f and foreground come with cam; what each is: above)",
    )  # fmt: skip
    parser.add_argument(
        "--sim", nargs="+", type=simulator_setting, default=[], metavar="FIELD=VALUE",
        help="simulator settings over the belt's (one hard feature at a time: classes_differ_by=shape)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default="segmentation_latest",
        help="results/<OUT>.json (and <OUT>_run.json); the curated rows are in segmentation.json",
    )  # fmt: skip
    args = parser.parse_args()
    _check_settings(parser, args)
    by_seed: BySeed = {}
    speeds: dict[str, list[float]] = {}
    for seed in args.seeds:
        with training_progress(), tempfile.TemporaryDirectory() as folder:
            scores, speed = run_seed(seed, args, Path(folder))
        for name, figures in scores.items():
            by_seed.setdefault(name, {})[seed] = figures
        for name, value in speed.items():
            speeds.setdefault(name, []).append(value)
    run = {field: getattr(args, field) for field in RUN_FIELDS}
    rows = summary_rows(by_seed, speeds, args.belt, dict(args.sim), args.image_size, run)
    print_table(rows, f"{len(args.seeds)} seeds")
    for figure in ("miou", "miou_best_threshold"):
        print_paired(by_seed, figure)
    write_results(args.out, rows_kept(args.out, args.belt, args.image_size, rows) + rows)
    write_results(f"{args.out}_run", run_record(**vars(args)))


def summary_rows(
    by_seed: BySeed, speeds: dict[str, list[float]], belt: str, sim: dict, image_size: int, run: dict | None
) -> list[dict]:
    """One row per method, in the benchmark's row order: the means over its seeds of each seed's
    figures, the figures themselves kept beside them, and the run's footage and budget (`run`, None
    where unknown), so rows of one file made by different runs can be told apart."""
    order = [name for name in ["foreground", "f2f"] + [name for name, *_ in RUNS] if name in by_seed]
    rows = []
    for name in order:
        seeds = sorted(by_seed[name])
        figures = [by_seed[name][seed] for seed in seeds]
        mious = [f["miou"] for f in figures]
        rows.append({
            "belt": belt,
            "sim": sim,
            "image_size": image_size,
            "run": run,
            "method": name,
            "miou": round(statistics.mean(mious), 2),
            "miou_std": round(statistics.pstdev(mious), 2),
            **{key: mean_known([f.get(key) for f in figures]) for key in MEANS},
            "seeds": seeds,
            "per_seed": figures,
            "paper_seruso": PAPER.get(name),
            "train_frames_per_s": round(statistics.mean(speeds[name]), 2) if speeds.get(name) else None,
        })  # fmt: skip
    return rows


def print_table(rows: list[dict], seeds: str) -> None:
    """The rows' means, then where each method's pixels go wrong."""
    print(f"\nsegmentation on the {rows[0]['belt']} simulated belt ({describe_machine()}), {seeds}")
    print(f"{'method':>14} {'mIoU':>7} {'std':>6} {'objects':>8} {'mIoU@obj':>9} {'thr':>5} {'obj thr':>8} "
          f"{'obj P':>6} {'obj R':>6} {'paper':>7} {'train fps':>10}")  # fmt: skip
    for row in rows:
        paper = f"{row['paper_seruso']:.2f}" if row["paper_seruso"] else "-"
        fps = f"{row['train_frames_per_s']:.1f}" if row["train_frames_per_s"] else "-"
        at_object = "-" if row["miou_object_threshold"] is None else f"{row['miou_object_threshold']:.2f}"
        check = [row[k] or 0.0 for k in ("object_threshold", "object_precision", "object_recall")]
        whole = "-" if row["miou_objects"] is None else f"{row['miou_objects']:.2f}"
        print(f"{row['method']:>14} {row['miou']:7.2f} {row['miou_std']:6.2f} {whole:>8} {at_object:>9} "
              f"{row['threshold']:5.2f} {check[0]:8.2f} {check[1]:6.2f} {check[2]:6.2f} {paper:>7} "
              f"{fps:>10}")  # fmt: skip
    _print_where_wrong(rows)


def _print_where_wrong(rows: list[dict]) -> None:
    """Which pixels each method gets wrong: spill onto touching legal objects shows as the first legal
    share well above the second."""
    print("\nshares at the masks' threshold (mean over seeds): illegal pixels found; called illegal on")
    print(f"{'method':>14} {'illegal found':>14} {'legal near illegal':>19} {'legal elsewhere':>16} "
          f"{'belt':>6}")  # fmt: skip
    for row in rows:
        shares = ["-" if row[key] is None else f"{row[key]:.3f}" for key in WHERE_WRONG]
        print(f"{row['method']:>14} {shares[0]:>14} {shares[1]:>19} {shares[2]:>16} {shares[3]:>6}")


def rows_kept(name: str, belt: str, image_size: int, rows: list[dict]) -> list[dict]:
    """The rows already in results/<name>.json that `rows` do not replace: other belts' and input
    scales' rows, and this belt's rows of methods not in `rows` (an ablation run adds its rows beside
    the others'; rows from before belts had names were on the standard belt)."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return []
    replaced = {(belt, image_size, row["method"]) for row in rows}
    stored = json.loads(path.read_text(encoding="utf-8"))
    return [row for row in stored if _row_key(row) not in replaced]


def _row_key(row: dict) -> tuple[str, int | None, str]:
    return row.get("belt", "standard"), row.get("image_size"), row["method"]


if __name__ == "__main__":
    main()
