"""`beltcam`: the one command a technician uses. Bad input ends in one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from calibration import CalibrationError
from edge.bridge_cli import add_bridge_parser, run_bridge
from edge.calibrate_cli import add_calibrate_parser, run_calibrate
from edge.camera_report import (
    SILENT_AFTER_S,
    UNHEALTHY_STATES,
    camera_events,
    camera_reports,
    report_lines,
    reports_as_json,
)
from edge.config import DEFAULT_CONFIG_PATH, ConfigError, SiteConfig, load_config
from edge.importer import ImportRejected, import_footage
from edge.recorder.recorder import Recorder, RecordingSummary
from edge.sources import build_sources
from edge.sources.simulated import write_simulator_calibration
from edge.store.database import DatabaseError
from edge.store.frame_store import FrameStore, utc_now
from edge.store.reconcile import check_store, repair_store
from edge.training import NoTrainingData, build_manifest
from trainer.errors import TrainerError

DEMO_CONFIG = Path("configs/simulated.yaml")
SIMULATOR_CALIBRATION = "simulator_calibration.yaml"


class CliError(RuntimeError):
    """A reason to stop, printed as one line."""


def _add_config(parser: argparse.ArgumentParser, default: Path = DEFAULT_CONFIG_PATH) -> None:
    parser.add_argument("--config", type=Path, default=default, help=f"site file (default: {default})")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beltcam", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the agent on the simulated belt")
    _add_config(demo, DEMO_CONFIG)
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")

    record = commands.add_parser("record", help="record C1 and C2 into the store")
    _add_config(record)
    record.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")

    imp = commands.add_parser("import", help="import a video or an image folder, with optional masks")
    _add_config(imp)
    imp.add_argument("--camera", choices=["c1", "c2"], required=True)
    imp.add_argument("--label", choices=["before", "after", "unlabeled"], required=True)
    imp.add_argument("--masks", type=Path, help="folder of PNG label maps named like the frames")
    imp.add_argument("--fps", type=float, help="frame rate of an image folder (for capture times)")
    imp.add_argument("source", type=Path, help="video file or folder of images (natural sort order)")

    train = commands.add_parser("train", help="train the classifier on recorded before/after footage")
    _add_config(train)
    train.add_argument("--method", choices=["cam", "puzzlecam", "temporal", "ours"], default="ours")
    train.add_argument(
        "--backbone", choices=["resnet18", "resnet34", "resnet50"], help="default: model.backbone"
    )
    train.add_argument("--image-size", type=int, help="default: model.image_size")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--flow", choices=["dis", "farneback", "raft", "belt"], default="dis")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="run directory (resumed if it exists)")
    train.add_argument("--manifest", type=Path, help="train from this manifest instead of the store")

    evaluate_cmd = commands.add_parser("eval", help="mIoU of a run on before frames with ground-truth masks")
    _add_config(evaluate_cmd)
    evaluate_cmd.add_argument("--run", type=Path, required=True, help="run directory")
    evaluate_cmd.add_argument("--maps", choices=["cam", "gradcam", "f2f"], default="cam")
    evaluate_cmd.add_argument("--manifest", type=Path, help="evaluate on this manifest instead of the store")
    evaluate_cmd.add_argument("--flip", action="store_true", help="add mirrored images' maps (test-time)")
    evaluate_cmd.add_argument(
        "--scales", type=float, nargs="+", default=[1.0], help="input scales to sum maps over"
    )
    evaluate_cmd.add_argument("--json", action="store_true", help="print one JSON object")

    export = commands.add_parser("export", help="export a run's classifier to ONNX (with a parity check)")
    _add_config(export)
    export.add_argument("--run", type=Path, required=True, help="run directory")
    export.add_argument("--out", type=Path, help="ONNX file (default: RUN/model.onnx)")

    cameras = commands.add_parser("cameras", help="each camera's health: state, counters, recent changes")
    _add_config(cameras)
    cameras.add_argument("--events", type=int, default=10, help="how many recent state changes to list")
    cameras.add_argument("--json", action="store_true", help="one JSON object, for plant monitoring")

    add_calibrate_parser(commands, _add_config)
    add_bridge_parser(commands, _add_config)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    check = db_commands.add_parser("check", help="reconcile files and index, both ways")
    _add_config(check)
    check.add_argument("--repair", action="store_true", help="apply the safe repairs")
    upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    _add_config(upgrade)
    return parser


def _open_store(config: SiteConfig) -> FrameStore:
    return FrameStore.from_config(config.storage)


def _record(config: SiteConfig, duration: float | None) -> RecordingSummary:
    store = _open_store(config)
    sources = build_sources(config)
    if all(camera.kind == "simulated" for camera in config.cameras):
        truth = write_simulator_calibration(
            config.storage.data_dir / SIMULATOR_CALIBRATION, config.simulator, config.cameras
        )
        print(f"simulator calibration (ground truth): {truth}")
    print(f"recording into {config.storage.data_dir} (index: {config.storage.resolved_database_url()})")
    recorder = Recorder(config, store, sources)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: recorder.stop())
    summary = recorder.run(duration, progress=sys.stderr.isatty() or duration is not None)
    print(
        f"recorded {summary.seconds:.1f} s: "
        + ", ".join(
            f"{c}: {summary.written[c]} frames, {summary.dropped[c]} dropped, {summary.errors[c]} errors"
            for c in sorted(summary.written)
        )
        + f"; {summary.paired} C1/C2 pairs (unpaired: "
        + ", ".join(f"{c} {n}" for c, n in sorted(summary.unpaired.items()))
        + f"); recordings {list(summary.recording_ids)}"
    )
    store.close()
    return summary


def _cameras(config: SiteConfig, args: argparse.Namespace) -> int:
    """Exit 1 while a camera is stalled, failing or silent: monitoring tools alarm on the status."""
    store = _open_store(config)
    # the recorder refreshes the rows at every index commit: silence is judged against that pace
    silent_after_s = max(SILENT_AFTER_S, 3 * config.recorder.commit_every_s)
    reports = camera_reports(store, silent_after_s=silent_after_s)
    events = camera_events(store, limit=args.events)
    store.close()
    if args.json:
        print(json.dumps(reports_as_json(reports, events), indent=2))
    else:
        for line in report_lines(reports, events):
            print(line)
    return 1 if any(report.state in UNHEALTHY_STATES for report in reports) else 0


def _db_check(config: SiteConfig, repair: bool) -> int:
    store = _open_store(config)
    report = check_store(store)
    for line in report.lines():
        print(line)
    if repair and not report.clean:
        for action in repair_store(store, report):
            print(f"repaired: {action}")
        after = check_store(store)
        print("after repair: " + after.lines()[-1])
        return 0 if not (after.missing_frames or after.orphan_frames or after.temp_files) else 1
    return 0 if report.clean else 1


def _train(config: SiteConfig, args: argparse.Namespace) -> int:
    store = _open_store(config)
    manifest_path, used = args.manifest, []
    if manifest_path is None:
        manifest_path = args.out / "store_manifest.json"
        _, used = build_manifest(store, "train", manifest_path, config.calibration_file)
        print(f"training on {len(used)} recordings (manifest: {manifest_path})")
    from edge.training import register_run  # loads torch: only once there is something to train on
    from trainer.train import TrainSettings, train

    weights = config.model.pretrained_weights
    settings = TrainSettings(
        method=args.method,
        backbone=args.backbone or config.model.backbone,
        image_size=args.image_size or config.model.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        flow=args.flow,
        seed=args.seed,
        weights=str(weights) if weights else "imagenet",
    )
    started = utc_now()
    result = train(manifest_path, settings, args.out, progress=True)
    run_id = register_run(store, settings, result, used, started)
    evaluation = (
        f"mIoU {result.evaluation.miou:.2f}" if result.evaluation else "no masked frames to evaluate on"
    )
    print(f"run {run_id} finished in {args.out}: {evaluation}; ONNX parity {result.onnx_max_abs_diff:.1e}")
    return 0


def _evaluate(config: SiteConfig, args: argparse.Namespace) -> int:
    from trainer.dataset import prepare_dataset
    from trainer.evaluate import evaluate
    from trainer.manifest import load_manifest
    from trainer.train import load_run_model

    model, settings = load_run_model(args.run)
    manifest_path = args.manifest
    if manifest_path is None:
        manifest_path = args.run / "eval_manifest.json"
        build_manifest(_open_store(config), "eval", manifest_path, config.calibration_file)
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


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.command == "train":
        return _train(config, args)
    if args.command == "eval":
        return _evaluate(config, args)
    if args.command == "export":
        return _export(args)
    if args.command in ("demo", "record"):
        _record(config, args.duration)
        return 0
    if args.command == "import":
        store = _open_store(config)
        summary = import_footage(
            store, args.camera, args.label, args.source, args.masks, fps=args.fps, progress=True
        )
        print(f"imported recording {summary.recording_id}: {summary.frames} frames, {summary.masks} masks")
        return 0
    if args.command == "cameras":
        return _cameras(config, args)
    if args.command == "bridge":
        return run_bridge(config, args)
    if args.command == "calibrate":
        return run_calibrate(config, _open_store(config), args)
    if args.command == "db":
        if args.db_command == "check":
            return _db_check(config, args.repair)
        _open_store(config).close()
        print(f"database at {config.storage.resolved_database_url()} is at the newest schema")
        return 0
    raise CliError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return _run(args)
    except (
        ConfigError,
        DatabaseError,
        ImportRejected,
        CliError,
        NoTrainingData,
        TrainerError,
        CalibrationError,
    ) as exc:
        print(f"beltcam: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
