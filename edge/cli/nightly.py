"""`beltcam nightly`: one night of the nightly loop, now (the agent's scheduler runs the same command
at the window's start, at a lowered CPU and I/O priority; a technician runs it to train tonight's
model by hand or to test the loop)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from edge.cli.common import add_config, interruptible, load_training_stack, number_type, open_store
from edge.config import SiteConfig
from edge.nightly.night import run_night
from edge.nightly.priority import lower_priority
from edge.store.lock import NIGHTLY_LOCK_FILE, DataDirLock

WINDOW_GRACE_S = 60.0
OUTCOME_EXIT = {"promoted": 0, "rejected": 0, "skipped": 0, "paused": 0, "failed": 1}


def add_parsers(commands: argparse._SubParsersAction) -> None:
    nightly = commands.add_parser(
        "nightly",
        help="train on what was recorded, judge the model against the live one, promote or keep it",
        description="One night of the nightly loop, now (docs/nightly.md).",
    )
    add_config(nightly)
    nightly.add_argument(
        "--window-h", type=number_type(0, 24), help="hours it may train, <= 24 (default: schedule.window_h)"
    )
    nightly.add_argument("--nice", action="store_true", help="at schedule.nice CPU and idle I/O priority")
    nightly.add_argument("--json", action="store_true", help="end with the night's report as one JSON line")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    if args.nice:
        lower_priority(config.schedule.nice)
    now = datetime.now(UTC)
    window_end = now + timedelta(hours=args.window_h or config.schedule.window_h)
    # an epoch already under way when the window closes is not waited for long: a minute after the
    # window the night stops as on SIGTERM (its run is resumable), whoever started it
    deadline = threading.Timer(
        (window_end - now).total_seconds() + WINDOW_GRACE_S, os.kill, (os.getpid(), signal.SIGTERM)
    )
    deadline.daemon = True
    load_training_stack()
    with DataDirLock(config.storage.data_dir, "beltcam nightly", NIGHTLY_LOCK_FILE):
        store = open_store(config)
        try:
            with interruptible():
                deadline.start()
                report = run_night(config, store, now, window_end, progress=sys.stderr.isatty())
        except KeyboardInterrupt:
            closed = " (its window closed)" if datetime.now(UTC) > window_end else ""
            print(f"nightly stopped{closed}: the next night goes on from where this one was; "
                  "the live model is kept")  # fmt: skip
            return 1
        finally:
            deadline.cancel()
            store.close()
    print(f"night {report.outcome}: {report.reason}")
    for other in report.others:
        print(f"  then {other.method}: {other.outcome}: {other.reason}")
    if args.json:
        print(json.dumps(asdict(report)))
    return OUTCOME_EXIT[report.outcome]
