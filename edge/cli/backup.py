"""`beltcam backup FILE` and `beltcam restore FILE`: the site file, calibration, database and the
models a rollback needs, in one archive; restored onto a fresh machine with every path moved.

`restore` takes `--config` as the place to write the restored site file (it must not exist unless
`--force`); the data directory is the one that site file names, relative to its new place.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli.common import add_config
from edge.config import DEFAULT_CONFIG_PATH, SiteConfig
from edge.store.backup import BackupError, restore_backup, write_backup
from edge.store.database import make_engine


def add_parsers(commands: argparse._SubParsersAction) -> None:
    backup = commands.add_parser(
        "backup", help="site file, calibration, database and models in one archive (.tar.gz)",
        description=" ".join(__doc__.split("\n\n")[0].split()),
    )  # fmt: skip
    add_config(backup)
    backup.add_argument("file", type=Path, help="the archive to write (e.g. beltcam-2026-11-27.tar.gz)")
    backup.add_argument("--frames", action="store_true", help="also the recorded frames, masks and depth")
    restore = commands.add_parser(
        "restore", help="restore an archive: the site file at --config, its data directory from it",
        description=" ".join(__doc__.split("\n\n")[0].split()),
    )  # fmt: skip
    add_config(restore)
    restore.add_argument("file", type=Path, help="an archive made by `beltcam backup`")
    restore.add_argument("--force", action="store_true", help="replace an existing site file and database")
    restore.add_argument(
        "--data-dir", type=Path, help="the restored site's data directory (default: the one its site file "
        "names; given, it is written into the site file, whose comments are then lost)",
    )  # fmt: skip
    restore.add_argument(
        "--database-url", help="the restored site's database (a PostgreSQL archive restored into "
        "another server or database; written into the site file like --data-dir)",
    )  # fmt: skip


def run(config: SiteConfig | None, args: argparse.Namespace) -> int:
    if args.command == "restore":
        target = args.config if args.config is not None else DEFAULT_CONFIG_PATH
        summary = restore_backup(
            args.file, target, args.force, data_dir=args.data_dir, database_url=args.database_url
        )
        models = ", ".join(map(str, summary.models)) or "none"
        print(f"restored {args.file} -> {summary.config_path} (data in {summary.data_dir}); models: {models}")
        return 0
    if args.file.exists():
        raise FileExistsError(f"{args.file} exists: choose a new name")
    if not args.file.parent.is_dir():
        raise BackupError(
            f"{args.file.parent}: no such folder for the archive (create it, or choose another)"
        )
    database = config.storage.resolved_database_url()
    engine = make_engine(database)  # not the store: a database of an older schema is backed up as it is
    try:
        config_path = args.config if args.config is not None else args.default_config
        summary = write_backup(config, config_path, engine, args.file, args.frames)
    finally:
        engine.dispose()
    models = ", ".join(map(str, summary.models)) or "none"
    frames = f"; {summary.frames} frame files" if args.frames else ""
    print(f"backup written: {summary.path} ({summary.bytes / 2**20:.1f} MB; models {models}{frames})")
    return 0
