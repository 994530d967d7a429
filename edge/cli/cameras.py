"""`beltcam cameras`: each camera's health, for the technician and for plant monitoring;
`beltcam cameras moved c1`: the technician's record that a camera was moved, re-aimed or replaced
(`beltcam doctor` then fails the calibration until that camera's belt plane is measured again)."""

from __future__ import annotations

import argparse
import json
from typing import get_args

from edge.capture.mounts import record_mount_change
from edge.capture.report import (
    SILENT_AFTER_S,
    UNHEALTHY_STATES,
    camera_events,
    camera_reports,
    report_lines,
    reports_as_json,
)
from edge.cli.common import add_config, count, open_store
from edge.config import CameraId, SiteConfig


def add_parsers(commands: argparse._SubParsersAction) -> None:
    cameras = commands.add_parser("cameras", help="each camera's health: state, counters, recent changes")
    add_config(cameras)
    cameras.add_argument("--events", type=count, default=10, help="how many recent state changes to list")
    cameras.add_argument("--json", action="store_true", help="one JSON object, for plant monitoring")
    actions = cameras.add_subparsers(dest="cameras_command", metavar="moved", required=False)
    moved = actions.add_parser(
        "moved", help="record that a camera was moved, re-aimed or replaced (its calibration is then due)"
    )
    add_config(moved)
    moved.add_argument("camera", choices=get_args(CameraId), help="the camera whose mount changed")
    moved.add_argument("--note", help="what happened (e.g. 'bracket bent, re-aimed'), kept with the record")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    """Exit 1 while a camera is stalled, failing or silent: monitoring tools alarm on the status."""
    store = open_store(config)
    if args.cameras_command == "moved":
        change = record_mount_change(store, args.camera, args.note)
        store.close()
        print(
            f"recorded: {change.camera} mounted anew {change.utc:%Y-%m-%d %H:%M UTC}; measure its belt plane "
            f"again (`beltcam calibrate plane --camera {change.camera} ...`), then the offsets"
        )
        return 0
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
