"""`beltcam train`, `eval` and `export`: the classifier's life from recorded footage to an ONNX file.

The trainer loads torch; it is imported only inside the commands that need it, so that `beltcam
record` and the others start fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.common import add_config, count, open_store, positive, positive_int
from edge.config import SiteConfig
from edge.nightly.manifests import build_manifest
from edge.nightly.runs import register_run
from edge.store.frame_store import utc_now


def add_parsers(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train the classifier on recorded before/after footage")
    add_config(train)
    train.add_argument("--method", choices=["cam", "puzzlecam", "temporal", "ours"], default="ours")
    train.add_argument(
        "--backbone", choices=["resnet18", "resnet34", "resnet50"], help="default: model.backbone"
    )
    train.add_argument("--image-size", type=positive_int, help="default: model.image_size")
    train.add_argument("--epochs", type=positive_int, default=10)
    train.add_argument("--batch-size", type=positive_int, default=8)
    train.add_argument("--flow", choices=["dis", "farneback", "raft", "belt"], default="dis")
    train.add_argument("--seed", type=count, default=0)
    train.add_argument(
        "--augment", action="store_true", help="mirror across the belt and vary brightness (fine-tuning)"
    )
    train.add_argument(
        "--out", type=Path, required=True, help="run directory (resumed with its own manifest if it exists)"
    )
    train.add_argument("--manifest", type=Path, help="train from this manifest instead of the store")

    evaluate_cmd = commands.add_parser("eval", help="mIoU of a run on before frames with ground-truth masks")
    add_config(evaluate_cmd)
    evaluate_cmd.add_argument("--run", type=Path, required=True, help="run directory")
    evaluate_cmd.add_argument("--maps", choices=["cam", "gradcam", "f2f"], default="cam")
    evaluate_cmd.add_argument("--manifest", type=Path, help="evaluate on this manifest instead of the store")
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
        return _evaluate(config, args)
    return _export(args)


def _train(config: SiteConfig, args: argparse.Namespace) -> int:
    store = open_store(config)
    manifest_path, used = args.manifest, []
    frozen = args.out / "manifest.json"
    if frozen.is_file() and (args.out / "settings.json").is_file():
        manifest_path, used = frozen, _recording_ids(frozen)
        print(f"resuming the run in {args.out} with the manifest it started with ({len(used)} recordings)")
    elif manifest_path is None:
        manifest_path = args.out / "store_manifest.json"
        _, used = build_manifest(store, "train", manifest_path, config.calibration_file)
        print(f"training on {len(used)} recordings (manifest: {manifest_path})")
    from trainer.train import TrainSettings, train

    settings = TrainSettings(
        method=args.method,
        backbone=args.backbone or config.model.backbone,
        image_size=args.image_size or config.model.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        flow=args.flow,
        seed=args.seed,
        weights=str(config.model.pretrained_weights),
        augment=args.augment,
    )
    started = utc_now()
    result = train(manifest_path, settings, args.out, progress=True)
    run_id = register_run(store, settings, result, used, started)
    evaluation = (
        f"mIoU {result.evaluation.miou:.2f}" if result.evaluation else "no masked frames to evaluate on"
    )
    print(f"run {run_id} finished in {args.out}: {evaluation}; ONNX parity {result.onnx_max_abs_diff:.1e}")
    return 0


def _recording_ids(manifest_path: Path) -> list[int]:
    """The store recordings a manifest built by `build_manifest` names (its sequences are `rec<id>`)."""
    sequences = json.loads(manifest_path.read_text(encoding="utf-8"))["sequences"]
    return [int(s["id"][3:]) for s in sequences if s["id"].startswith("rec") and s["id"][3:].isdigit()]


def _evaluate(config: SiteConfig, args: argparse.Namespace) -> int:
    from trainer.dataset import prepare_dataset
    from trainer.evaluate import evaluate
    from trainer.manifest import load_manifest
    from trainer.train import load_run_model

    model, settings = load_run_model(args.run)
    manifest_path = args.manifest
    if manifest_path is None:
        manifest_path = args.run / "eval_manifest.json"
        build_manifest(open_store(config), "eval", manifest_path, config.calibration_file)
    manifest, base = load_manifest(manifest_path)
    sequences = prepare_dataset(
        manifest,
        base,
        settings.image_size,
        settings.flow,
        settings.foreground,
        args.run / "cache",
        not args.json,
    )
    result = evaluate(model, sequences, args.maps, args.flip, tuple(args.scales))
    method = settings.method if args.maps == "cam" else args.maps
    if args.json:
        print(json.dumps({"method": method, **result.to_json()}))
    else:
        print(f"{method} ({args.maps} maps): mIoU {result.miou:.2f} at threshold {result.threshold}")
        for sequence_id, iou in result.per_sequence.items():
            print(f"  {sequence_id}: IoU {iou:.2f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from trainer.export import export_onnx
    from trainer.train import load_run_model

    model, settings = load_run_model(args.run)
    metrics_file = args.run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    threshold = (metrics.get("evaluation") or {}).get("threshold")
    out = args.out or args.run / "model.onnx"
    difference = export_onnx(model, out, settings.image_size, threshold, {"method": settings.method})
    print(f"exported {out} (max abs difference to PyTorch {difference:.1e})")
    return 0
