"""`beltcam`: the one command a technician uses. Bad input ends in one line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from edge.config import DEFAULT_CONFIG_PATH, ConfigError, SiteConfig, load_config
from edge.importer import ImportRejected, import_footage
from edge.recorder.recorder import Recorder, RecordingSummary
from edge.sources import build_sources
from edge.sources.simulated import write_simulator_calibration
from edge.store.database import DatabaseError
from edge.store.frame_store import FrameStore
from edge.store.reconcile import check_store, repair_store

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
        + f"; {summary.paired} C1/C2 pairs; recordings {list(summary.recording_ids)}"
    )
    store.close()
    return summary


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


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
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
    except (ConfigError, DatabaseError, ImportRejected, CliError) as exc:
        print(f"beltcam: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
