"""`beltcam train`, `eval` and `export`: the classifier's life from recorded footage to an ONNX file.

The trainer loads torch; it is imported only inside the commands that need it, so that `beltcam
record` and the others start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.common import add_config, count, number_type, open_store, positive, positive_int
from edge.config import SiteConfig
from edge.nightly.manifests import build_manifest
from edge.nightly.runs import ended_unfinished, finish_run, start_run
from trainer.variants import VARIANTS, variant_settings


def add_parsers(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train the classifier on recorded before/after footage")
    add_config(train)
    train.add_argument(
        "--method", choices=[*VARIANTS, "gradcam"], default="ours",
        help="gradcam: the paper's Grad-CAM baseline (evaluated, never exported); variants: *_nopcls without "
        "the tiles' classification loss, ours_meanfuse with mean fusion, *_present with L_spatial on the "
        "image's own classes, ours_os8 with class maps at stride 8 (for inputs below 256 px: the temporal "
        "term needs about 16 cells across) (docs/trainer.md)",
    )  # fmt: skip
    train.add_argument(
        "--backbone", choices=["resnet18", "resnet34", "resnet50"], help="default: model.backbone"
    )
    train.add_argument(
        "--image-size", type=number_type(32, low_allowed=True, integer=True),
        help="the input's long side, a multiple of 32 (default: model.image_size)",
    )  # fmt: skip
    train.add_argument("--epochs", type=positive_int, default=10)
    train.add_argument("--batch-size", type=positive_int, default=8)
    train.add_argument(
        "--samples-per-epoch", type=positive_int, help="draw this many samples per epoch (hours of footage)"
    )
    train.add_argument("--flow", choices=["dis", "farneback", "raft", "belt"], default="dis")
    train.add_argument("--seed", type=count, default=0)
    train.add_argument(
        "--augment", action="store_true", help="mirror across the belt and vary brightness (fine-tuning)"
    )
    train.add_argument(
        "--out", type=Path, required=True, help="run directory (resumed with its own manifest if it exists)"
    )
    train.add_argument("--manifest", type=Path, help="train from this manifest instead of the store")

    evaluate_cmd = commands.add_parser(
        "eval",
        help="mIoU on before frames with masks, and the removal-based object check on held-out footage",
    )
    add_config(evaluate_cmd)
    evaluate_cmd.add_argument("--run", type=Path, required=True, help="run directory")
    evaluate_cmd.add_argument(
        "--maps", choices=["cam", "f2f"], default="cam", help="f2f: flow-warped neighbours' maps fused by max"
    )
    evaluate_cmd.add_argument(
        "--manifest",
        type=Path,
        help="evaluate on this manifest (default: the run's held-out footage and masks)",
    )
    evaluate_cmd.add_argument("--flip", action="store_true", help="add mirrored images' maps (test-time)")
    evaluate_cmd.add_argument(
        "--scales", type=positive, nargs="+", default=[1.0], help="input scales to sum maps over"
    )
    evaluate_cmd.add_argument("--json", action="store_true", help="print one JSON object")

    export = commands.add_parser("export", help="export a run's classifier to ONNX (with a parity check)")
    add_config(export)
    export.add_argument("--run", type=Path, required=True, help="run directory")
    export.add_argument("--out", type=Path, help="ONNX file (default: RUN/model.onnx)")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    if args.command == "train":
        return _train(config, args)
    if args.command == "eval":
        return _evaluate(args)
    return _export(args)


def _train(config: SiteConfig, args: argparse.Namespace) -> int:
    from trainer.distributed import join_group
    from trainer.train import TrainSettings, train, training_device

    settings = TrainSettings(
        **variant_settings(args.method),
        backbone=args.backbone or config.model.backbone,
        image_size=args.image_size or config.model.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        flow=args.flow,
        seed=args.seed,
        weights=str(config.model.pretrained_weights),
        augment=args.augment,
        samples_per_epoch=args.samples_per_epoch,
    )
    if not settings.granularity_ok():  # before anything is written
        print(f"beltcam: error: {settings.granularity_error()}", file=sys.stderr)
        return 2
    args.out = args.out.resolve()  # the store records runs and models by absolute path
    group = join_group(training_device(settings).type)  # under torchrun: one of several processes
    if not group.leader:  # the leader alone reads and writes the store; the others train beside it
        train(Path(group.share(None)), settings, args.out, progress=False)
        return 0
    store = open_store(config)
    manifest_path, used = args.manifest, []
    frozen = args.out / "manifest.json"
    if frozen.is_file() and (args.out / "checkpoint.pt").is_file():
        manifest_path, used = frozen, _recording_ids(frozen)
        if not (args.out / "metrics.json").is_file():
            print(f"resuming {args.out} with the manifest it started with ({len(used)} recordings)")
    elif manifest_path is None:
        manifest_path = args.out / "store_manifest.json"
        _, used = build_manifest(store, manifest_path, config.calibration_file)
        print(f"training on {len(used)} recordings (manifest: {manifest_path})")
    group.share(str(manifest_path))
    run_id = start_run(store, args.method, args.out, used)  # the variant's name, as the nightly loop's
    with ended_unfinished(store, run_id, f"beltcam train --out {args.out} resumes it"):
        result = train(manifest_path, settings, args.out, progress=True)
    finish_run(store, run_id, result)
    found = result.evaluation
    figures = [f"mIoU {found.miou:.2f}"] if found.miou is not None else []
    if found.object_check:
        check = found.object_check
        figures.append(f"object check precision {check['precision']:.2f} recall {check['recall']:.2f}")
    figures.append(f"threshold {found.threshold} (from the {found.threshold_source})")
    if result.onnx_path is None:
        figures.append("no ONNX (the Grad-CAM baseline is never deployed)")
    else:
        figures.append(f"ONNX parity {result.onnx_max_abs_diff:.1e}")
    print(f"run {run_id} finished in {args.out}: " + "; ".join(figures))
    return 0


def _recording_ids(manifest_path: Path) -> list[int]:
    """The store recordings a manifest built by `build_manifest` names (its sequences are `rec<id>`)."""
    sequences = json.loads(manifest_path.read_text(encoding="utf-8"))["sequences"]
    return [int(s["id"][3:]) for s in sequences if s["id"].startswith("rec") and s["id"][3:].isdigit()]


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.dataset import prepare_dataset
    from trainer.evaluate import evaluate
    from trainer.manifest import load_manifest
    from trainer.train import load_run_model, run_input_shape

    model, settings = load_run_model(args.run)
    # by default, the run's own held-out footage and masks, as frozen when it started
    manifest, base = load_manifest(args.manifest or args.run / "manifest.json")
    sequences = prepare_dataset(
        manifest,
        base,
        run_input_shape(args.run),
        settings.flow,
        settings.foreground,
        args.run / "cache",
        not args.json,
    )
    result = evaluate(model, sequences, args.maps, args.flip, tuple(args.scales), manifest.belt)
    method = settings.method if args.maps == "cam" else args.maps
    if args.json:
        print(json.dumps({"method": method, **result.to_json()}))
        return 0
    if result.miou is not None:
        print(f"{method} ({args.maps} maps): mIoU {result.miou:.2f} at threshold {result.threshold} (masks)")
        for sequence_id, iou in result.per_sequence.items():
            print(f"  {sequence_id}: IoU {iou:.2f}")
    check = result.object_check
    if check is not None:
        print(
            f"{method} ({args.maps} maps), object check: precision {check['precision']:.2f}, "
            f"recall {check['recall']:.2f} on {check['test_objects']} objects "
            f"({check['removed_objects']} removed by the sorter) at threshold {check['threshold']}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from trainer.evaluate import EvaluationResult
    from trainer.train import export_run, load_run_model, run_input_shape

    model, settings = load_run_model(args.run)
    metrics_file = args.run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if not metrics.get("evaluation"):
        print(f"beltcam: error: {args.run}: no threshold in metrics.json: finish the run first "
              "(beltcam train --out RUN resumes it)", file=sys.stderr)  # fmt: skip
        return 2
    out = args.out or args.run / "model.onnx"
    evaluation = EvaluationResult(**metrics["evaluation"])
    difference = export_run(model, settings, evaluation, out, run_input_shape(args.run))
    print(f"exported {out} (max abs difference to PyTorch {difference:.1e})")
    return 0
