"""What every `beltcam` command group shares: the `--config` option, the store it opens, and number
types that refuse an impossible value where it is typed, before anything is saved or sent."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import os
import signal
from pathlib import Path

from edge.config import DEFAULT_CONFIG_PATH, SiteConfig
from edge.simulator.calibration_truth import write_simulator_calibration
from edge.store.frame_store import FrameStore


def add_config(parser: argparse.ArgumentParser, default: Path = DEFAULT_CONFIG_PATH) -> None:
    """`--config` after the command; `beltcam --config F command` works too (main takes either),
    so this one must not overwrite a value given before the command with its default."""
    parser.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help=f"site file (default: {default})"
    )
    parser.set_defaults(default_config=default)


@contextlib.contextmanager
def interruptible():
    """SIGTERM stops a long step like Ctrl-C does (as KeyboardInterrupt), instead of killing it: the
    step can say where it stopped and leave its work resumable."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_training_stack() -> None:
    """Import torch and ONNX Runtime (seconds) before a step that SIGTERM may stop (`interruptible`):
    a signal landing inside a C extension's import turns into an ImportError with a traceback, not a
    clean stop."""
    importlib.import_module("trainer.train")


def open_store(config: SiteConfig) -> FrameStore:
    return FrameStore.from_config(config.storage)


def number_type(
    low: float | None, high: float | None = None, *, low_allowed: bool = False, integer: bool = False
):
    """An argparse type for a finite number above `low` (or at it, with `low_allowed`; no bound when
    None) and at most `high`: `nan` and `inf` are refused too."""

    def parse(text: str) -> float | int:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is None:
            return value
        too_low = value < low if low_allowed else value <= low
        if too_low or (high is not None and value > high):
            lowest = f">= {low:g}" if low_allowed else f"> {low:g}"
            highest = f" and <= {high:g}" if high is not None else ""
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {lowest}{highest}")
        return value

    return parse


positive = number_type(0)
non_negative = number_type(0, low_allowed=True)
finite = number_type(None)
positive_int = number_type(0, integer=True)
count = number_type(0, low_allowed=True, integer=True)


def calibrate_simulated_site(config: SiteConfig, store: FrameStore) -> None:
    """A simulated site is calibrated out of the box: the simulator's own calibration (belt planes,
    speed, offsets, its nozzle bank) fills the site's calibration file, unless a technician's
    calibration is there. Nothing to do without a calibration file."""
    path = config.calibration_file
    if path is None:
        return
    outcome, calibration = write_simulator_calibration(
        path, config.simulator, config.cameras, site=config.site_name, store=store
    )
    version = f"{path} (version {calibration.version})"
    said = {
        "written": f"the simulated installation's own calibration saved as {version}",
        "up to date": f"{version} is the simulator's, up to date",
        "kept": f"{version} is the site's own calibration: kept, not replaced by the simulator's",
    }
    print(f"calibration: {said[outcome]}")


SYSLOG_PRIORITY = {
    logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7
}  # fmt: skip


class _JournalPriority(logging.Filter):
    """Each line starts with its syslog priority (`<3>` for errors...) so that the journal keeps the
    level (the unit sets SyslogLevelPrefix=true): `journalctl -u beltcam -p warning` then works."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        return True


def configure_logging(verbose: bool) -> None:
    under_journal = "JOURNAL_STREAM" in os.environ  # systemd sets it when stdout/stderr go to the journal
    handler = logging.StreamHandler()
    if under_journal:
        handler.addFilter(_JournalPriority())
        handler.setFormatter(logging.Formatter("<%(priority)d>%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
