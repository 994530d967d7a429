"""`beltcam doctor [--json] [--site-file]`: the pre-flight check a technician runs before starting
the belt, and the first thing support asks for. Exit 0 when nothing fails (warnings allowed), 1 when
an item fails (an invalid site file is a failed item too)."""

from __future__ import annotations

import argparse
import json

from edge.cli.common import add_config
from edge.cli.doctor_checks import FAIL, PASS, Check, run_checks

MARKS = {PASS: "PASS", "warn": "WARN", FAIL: "FAIL"}


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("doctor", help="pre-flight check of the site: each item pass / warn / fail",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))  # fmt: skip
    add_config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per item")
    parser.add_argument(
        "--site-file", action="store_true",
        help="only the items judged from the site file itself: no database, camera or link is opened "
        "or created",
    )  # fmt: skip


def run(_config: None, args: argparse.Namespace) -> int:
    """The site file is the first item (an invalid one fails there), so `main` hands no config."""
    checks: list[Check] = []
    path = args.config if args.config is not None else args.default_config
    for check in run_checks(path, site_file_only=args.site_file):
        checks.append(check)
        if args.json:
            print(json.dumps(check.as_json()), flush=True)
        else:
            print(f"{MARKS[check.status]}  {check.item:<15} {check.seen}", flush=True)
            if check.fix:
                print(f"{'':6}{'':<15} fix: {check.fix}", flush=True)
    failed = [check.item for check in checks if check.status == FAIL]
    if not args.json:
        print(
            f"\n{len(failed)} failed: {', '.join(failed)}" if failed else "\nall checks passed (or only warn)"
        )
    return 1 if failed else 0
