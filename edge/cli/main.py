"""`beltcam`: the one command a technician uses. Bad input ends in one line and a non-zero exit.

Each command group lives in its own module with `add_parsers(commands)` and `run(config, args)`;
this module only assembles them and turns every expected failure into that one line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from calibration import CalibrationError
from edge.cli import (
    backup,
    bridge,
    calibrate,
    cameras,
    db,
    doctor,
    import_footage,
    init,
    models,
    nightly,
    panel,
    record,
    run,
    service,
    training,
    users,
)
from edge.cli.common import configure_logging
from edge.cli.safe_mode import load_or_fix
from edge.config import ConfigError, redact_credentials
from edge.live.site_check import LiveUnavailable
from edge.nightly.manifests import NoTrainingData
from edge.panel.server import PanelUnavailable
from edge.recorder.importer import ImportRejected
from edge.store.backup import BackupError
from edge.store.database import DatabaseError
from edge.store.lock import DataDirLocked, DataDirUnwritable
from edge.store.registry import RegistryError
from edge.store.users import UserError
from trainer.errors import TrainerError

COMMAND_GROUPS = (
    run, record, import_footage, training, nightly, models, cameras, calibrate, bridge, db, users, panel,
    backup, doctor, init, service
)  # fmt: skip
RUNNERS = {
    "demo": run,
    "run": run,
    "record": record,
    "import": import_footage,
    "train": training,
    "eval": training,
    "export": training,
    "nightly": nightly,
    "models": models,
    "cameras": cameras,
    "calibrate": calibrate,
    "bridge": bridge,
    "db": db,
    "users": users,
    "panel": panel,
    "backup": backup,
    "restore": backup,
    "doctor": doctor,
    "init": init,
    "service": service,
}


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments end like every other mistake: one line naming the command, exit 2 (`--help`
    still shows the whole usage). Subcommand parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("beltcam").strip()
        self.exit(2, f"beltcam: error: {command + ': ' if command else ''}{message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="beltcam", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--config", type=Path, help="site file (also accepted after the command)")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    board = args.command == "calibrate" and args.calibrate_command == "board"
    if board or args.command in ("restore", "init", "doctor"):
        return RUNNERS[args.command].run(None, args)  # no site needed or made; doctor judges it itself
    config_path = args.config if args.config is not None else args.default_config
    return RUNNERS[args.command].run(load_or_fix(config_path, args), args)  # run/demo/panel: safe mode


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as ended:  # bad arguments (one line, said already) or --help
        return int(ended.code or 0)
    configure_logging(args.verbose)
    try:
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: a reader gone (`| head`) is caught below
        return code
    except BrokenPipeError:  # whoever read the output stopped reading: nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (
        ConfigError,
        DatabaseError,
        DataDirLocked,
        DataDirUnwritable,
        ImportRejected,
        NoTrainingData,
        TrainerError,
        CalibrationError,
        LiveUnavailable,
        RegistryError,
        UserError,
        PanelUnavailable,
        BackupError,
        FileExistsError,
    ) as exc:
        print(f"beltcam: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine said no (a read-only disk, a missing folder): the error names it
        print(f"beltcam: error: {exc}", file=sys.stderr)
        return 2
    except EOFError:  # a question asked with nothing at the other end (no terminal, a closed pipe)
        print("beltcam: error: the input ended before an answer was given", file=sys.stderr)
        return 2
    except (SQLAlchemyError, sqlite3.Error) as exc:  # a database that opened but cannot be read
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"beltcam: error: database: {redact_credentials(reason)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
