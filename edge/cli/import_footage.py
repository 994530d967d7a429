"""`beltcam import`: footage from elsewhere (a video file or an image folder, with optional masks)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from edge.cli.common import add_config, open_store, positive
from edge.config import SiteConfig
from edge.recorder.importer import ImportRejected, import_footage
from edge.store.lock import DataDirLock


def add_parsers(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser("import", help="import a video or an image folder, with optional masks")
    add_config(imp)
    imp.add_argument("--camera", choices=["c1", "c2"], required=True)
    imp.add_argument("--label", choices=["before", "after", "unlabeled"], required=True)
    imp.add_argument("--masks", type=Path, help="folder of PNG label maps named like the frames")
    imp.add_argument("--fps", type=positive, help="frame rate of an image folder (for capture times)")
    imp.add_argument("source", type=Path, help="video file or folder of images (natural sort order)")


def _stopped(signum: int, frame: object) -> None:
    raise ImportRejected(f"import stopped by {signal.Signals(signum).name}: nothing was stored")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stopped)  # as Ctrl-C: the import removes what it wrote, then ends
    with DataDirLock(config.storage.data_dir, "beltcam import"):
        summary = import_footage(
            open_store(config), args.camera, args.label, args.source, args.masks, fps=args.fps, progress=True
        )
    print(f"imported recording {summary.recording_id}: {summary.frames} frames, {summary.masks} masks")
    return 0
