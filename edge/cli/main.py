"""`beltcam`: the one command a technician uses. Bad input ends in one line and a non-zero exit.

Each command group lives in its own module with `add_parsers(commands)` and `run(config, args)`;
this module only assembles them and turns every expected failure into that one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from calibration import CalibrationError
from edge.cli import bridge, calibrate, cameras, db, import_footage, record, training
from edge.config import ConfigError, load_config
from edge.nightly.manifests import NoTrainingData
from edge.recorder.importer import ImportRejected
from edge.store.database import DatabaseError
from edge.store.lock import DataDirLocked
from trainer.errors import TrainerError

COMMAND_GROUPS = (record, import_footage, training, cameras, calibrate, bridge, db)
RUNNERS = {
    "demo": record,
    "record": record,
    "import": import_footage,
    "train": training,
    "eval": training,
    "export": training,
    "cameras": cameras,
    "calibrate": calibrate,
    "bridge": bridge,
    "db": db,
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beltcam", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    return RUNNERS[args.command].run(load_config(args.config), args)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return _run(args)
    except (
        ConfigError,
        DatabaseError,
        DataDirLocked,
        ImportRejected,
        NoTrainingData,
        TrainerError,
        CalibrationError,
    ) as exc:
        print(f"beltcam: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
