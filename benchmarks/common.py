"""What every benchmark shares: the machine it ran on and how its results file is written."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml

from edge.config import SimulatorConfig


def describe_machine() -> str:
    cpu = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


RESULTS_DIR = Path(__file__).with_name("results")


def write_results(name: str, payload: dict | list) -> Path:
    """Write `results/<name>.json` (the figures benchmarks/README.md quotes) and say where."""
    path = RESULTS_DIR / f"{name}.json"
    RESULTS_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path}")
    return path


@contextmanager
def training_progress() -> Iterator[None]:
    """The trainer's start, epoch and end lines on stderr while a benchmark trains: its runs train
    without progress bars (they would flood a log) and a row can take an hour of silence otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("trainer.train")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_record(**fields) -> dict:
    """Date and machine of a benchmark run, plus its own fields."""
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": describe_machine(), **fields}


def mean_known(values: list, digits: int = 3) -> float | None:
    """Mean of the values that were measured (None: not measured, e.g. no object check possible)."""
    known = [value for value in values if value is not None]
    return round(statistics.mean(known), digits) if known else None


def simulator_setting(text: str) -> tuple[str, object]:
    """`--sim FIELD=VALUE`: a simulator field over a named belt's, the value read as YAML."""
    field, equals, value = text.partition("=")
    if not equals or field not in SimulatorConfig.model_fields:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIELD=VALUE with a simulator field")
    return field, yaml.safe_load(value)
