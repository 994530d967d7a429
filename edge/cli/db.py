"""`beltcam db check|upgrade`: the store's maintenance."""

from __future__ import annotations

import argparse

from edge.cli.common import add_config, open_store
from edge.config import SiteConfig
from edge.store.lock import DataDirLock
from edge.store.reconcile import check_store, repair_store


def add_parsers(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    check = db_commands.add_parser("check", help="reconcile files and index, both ways")
    add_config(check)
    check.add_argument("--repair", action="store_true", help="apply the safe repairs")
    upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    add_config(upgrade)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    if args.db_command == "check" and not args.repair:
        return _check(config, repair=False)  # reading only: fine beside a running agent
    with DataDirLock(config.storage.data_dir, f"beltcam db {args.db_command}"):
        if args.db_command == "check":
            return _check(config, repair=True)
        open_store(config).close()
    print(f"database at {config.storage.shown_database_url()} is at the newest schema")
    return 0


def _check(config: SiteConfig, repair: bool) -> int:
    store = open_store(config)
    print(f"store: {config.storage.data_dir} (index: {config.storage.shown_database_url()})")
    report = check_store(store)
    recorder = None if repair else DataDirLock(config.storage.data_dir, "beltcam db check").owner()
    if recorder is not None:
        print(f"recording in progress ({recorder}): its open recordings and unindexed files are not problems")
        report = report.without_work_in_progress()
    for line in report.lines():
        print(line)
    if repair and not report.clean:
        for action in repair_store(store, report):
            print(f"repaired: {action}")
        after = check_store(store)
        print("after repair: " + after.lines()[-1])
        return 0 if not (after.missing_frames or after.orphan_frames or after.temp_files) else 1
    return 0 if report.clean else 1
