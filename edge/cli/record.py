"""`beltcam record`: capture C1 and C2 into the store until told to stop."""

from __future__ import annotations

import argparse
import signal
import sys

from edge.capture.cameras import build_sources
from edge.cli.common import add_config, calibrate_simulated_site, open_store, positive
from edge.config import SiteConfig
from edge.recorder.recorder import Recorder, RecordingSummary
from edge.store.frame_store import FrameStore
from edge.store.lock import DataDirLock
from edge.store.reconcile import reconcile_at_start

DURATION_HELP = "stop after this many seconds (default: until Ctrl-C)"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    record = commands.add_parser("record", help="record C1 and C2 into the store")
    add_config(record)
    record.add_argument("--duration", type=positive, help=DURATION_HELP)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    """Exit 2 when a camera never delivered a frame (a missing file, a wrong address) or recording
    ended paused (full or read-only disk): what was recorded is kept, but the site is not recording
    what it should."""
    summary = record(config, args.duration)
    problems = [
        f"camera {camera} never delivered a frame: {why}" for camera, why in summary.unavailable.items()
    ]
    if summary.storage_alarm:
        problems.append(f"recording was paused when it ended: {summary.storage_alarm}")
    for problem in problems:
        print(f"beltcam: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def record(config: SiteConfig, duration: float | None) -> RecordingSummary:
    """Record while owning the data directory; what a crash left behind is mended first."""
    with DataDirLock(config.storage.data_dir, "beltcam record"):
        store = open_store(config)
        for action in reconcile_at_start(store):
            print(f"start-up check: {action}")
        summary = _record(config, store, duration)
        store.close()
    return summary


def _record(config: SiteConfig, store: FrameStore, duration: float | None) -> RecordingSummary:
    if all(camera.kind == "simulated" for camera in config.cameras):
        calibrate_simulated_site(config, store)
    sources = build_sources(config)
    print(f"recording into {config.storage.data_dir} (index: {config.storage.shown_database_url()})")
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
        + "; belt the other camera did not record: "
        + ", ".join(f"{c} {n}" for c, n in sorted(summary.outside.items()))
        + f"); recordings {list(summary.recording_ids)}"
    )
    return summary
