"""`beltcam db check|upgrade`: the store's maintenance."""

from __future__ import annotations

import argparse

from edge.cli.common import add_config, open_store, positive
from edge.config import SiteConfig
from edge.store.backup import BackupError, fresh_backup
from edge.store.database import current_revision, known_revisions, make_engine, upgrade_schema
from edge.store.lock import DataDirLock
from edge.store.reconcile import check_store, repair_store


def add_parsers(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    check = db_commands.add_parser("check", help="reconcile files and index, both ways")
    add_config(check)
    check.add_argument("--repair", action="store_true", help="apply the safe repairs")
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the database to this beltcam's schema (after a backup: docs/install.md)"
    )
    add_config(upgrade)
    upgrade.add_argument("--without-backup", action="store_true", help="migrate without a fresh backup")
    upgrade.add_argument("--backup-max-age-h", type=positive, default=24.0, help="how fresh (default 24 h)")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    if args.db_command == "check" and not args.repair:
        return _check(config, repair=False)  # reading only: fine beside a running agent
    with DataDirLock(config.storage.data_dir, f"beltcam db {args.db_command}"):
        if args.db_command == "check":
            return _check(config, repair=True)
        return _upgrade(config, args)


def _upgrade(config: SiteConfig, args: argparse.Namespace) -> int:
    """Migrate an existing database only after a fresh backup of it (or when told): the way back from
    a migration is that backup, restored with the beltcam that made it."""
    engine = make_engine(config.storage.resolved_database_url())
    try:
        found, newest = current_revision(engine), known_revisions()[-1]
        shown = config.storage.shown_database_url()
        if found == newest:
            print(f"database at {shown} is at the newest schema ({newest})")
            return 0
        if found is not None and not args.without_backup:
            backup = fresh_backup(config.storage.data_dir, found, args.backup_max_age_h)
            if backup is None:
                raise BackupError(
                    f"{shown}: no backup of this database (schema {found}) in the last "
                    f"{args.backup_max_age_h:g} h: `beltcam backup FILE` first (or --without-backup)"
                )
            print(f"backup of schema {found}: {backup['archive']} ({backup['created_utc'][:19]} UTC)")
        upgrade_schema(engine)
    finally:
        engine.dispose()
    print(f"database at {shown} migrated: {found or 'empty'} -> {newest}")
    if found is not None:
        print("to go back: install the previous beltcam and `beltcam restore` that backup")
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
