"""Calibration steps run from the panel as `beltcam calibrate ...`, a process of their own.

Why a process and not `CalibrationSession` in the panel: the session belongs to the calibrate room,
which the panel may not import (rooms side by side never import each other), and moving it down
would drag its clip reading, undistortion cache and CSV parsing into the store. The CLI is that
room's public face already: the same checks, the same one-line reasons and the same saved versions
as on a technician's laptop, with nothing of it copied here. A separate process also keeps a
minute of OpenCV work and any crash in it away from a panel that may be serving the live path.

Steps run one at a time per panel (a second is refused while one runs) and synchronously, within a
time limit; the last step's output is kept in the data directory for the page, since a session
cookie is too small for it.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.store.frame_store import utc_now
from edge.store.processes import beltcam_command

STEP_TIMEOUT_S = 300.0
OUTPUT_LIMIT = 20_000  # characters of a step's output kept for the page
LAST_STEP_FILE = "panel/calibration-last-step.json"  # under the data directory


class StepBusy(RuntimeError):
    """Another calibration step is running in this panel."""


@dataclass
class StepOutcome:
    command: str  # as a technician would type it
    returncode: int | None  # None: stopped at the time limit
    output: str
    by: str
    finished_utc: str
    summary: str  # the line that says how it went: the first step's last, or the failing step's

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CalibrateRunner:
    """Runs `beltcam calibrate` for one site, one step at a time."""

    def __init__(self, config_path: Path | None, data_dir: Path, timeout_s: float = STEP_TIMEOUT_S) -> None:
        self.config_path = config_path
        self.last_file = data_dir / LAST_STEP_FILE
        self.timeout_s = timeout_s
        self._busy = threading.Lock()

    def run(self, steps: list[tuple[str, list[str]]], by: str) -> StepOutcome:
        """`beltcam calibrate STEP --config F ARGS` for each step in turn, up to the first that fails;
        values must be given as `--name=value`, so that a value starting with a dash is never read as
        an option."""
        if self.config_path is None:
            raise StepBusy("this panel was started without a site file path: use `beltcam calibrate`")
        if not self._busy.acquire(blocking=False):
            raise StepBusy("another calibration step is running: wait for it to end")
        try:
            commands, outputs, returncode = [], [], 0
            for step, args in steps:
                arguments = ["calibrate", step, f"--config={self.config_path.resolve()}", *args]
                commands.append("beltcam " + " ".join(arguments))
                returncode, output = self._one(arguments)
                outputs.append(output)
                if returncode != 0:
                    break
            telling = outputs[-1] if returncode != 0 else outputs[0]
            outcome = StepOutcome(
                command="; ".join(commands), returncode=returncode, output="".join(outputs)[-OUTPUT_LIMIT:],
                by=by, finished_utc=utc_now().isoformat(timespec="seconds"), summary=_last_line(telling),
            )  # fmt: skip
            self._keep(outcome)
            return outcome
        finally:
            self._busy.release()

    def _one(self, arguments: list[str]) -> tuple[int | None, str]:
        try:
            done = subprocess.run(
                beltcam_command(*arguments), capture_output=True, text=True, errors="replace",
                timeout=self.timeout_s, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as stopped:
            output = _text(stopped.stdout) + _text(stopped.stderr)
            return None, output + f"\nstopped: no answer within {self.timeout_s:g} s\n"
        return done.returncode, done.stdout + done.stderr

    def _keep(self, outcome: StepOutcome) -> None:
        self.last_file.parent.mkdir(parents=True, exist_ok=True)
        self.last_file.write_text(json.dumps(asdict(outcome)), encoding="utf-8")

    def last(self) -> StepOutcome | None:
        try:
            return StepOutcome(**json.loads(self.last_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def _last_line(output: str) -> str:
    """The CLI ends with the line that says how a step went, errors included."""
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""
