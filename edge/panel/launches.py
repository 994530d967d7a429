"""Starting a night from the Training page: `beltcam nightly` as a process of its own.

The panel starts the very command the agent's scheduler starts (`edge.store.processes`), not the
nightly code in its own process: the panel may not import the nightly room, training must never
share the interpreter of a panel that may serve the live path, and a night started from the panel
goes on (and is stopped, paused and resumed) exactly like a scheduled one. The child gets a session
of its own, so a panel restart does not kill a night in the middle of an epoch.

Whether a night already runs is the nightly lock's word (the command holds it): a start while it is
held is refused with who holds it. Between the start and the moment the child takes the lock, the
panel's own record of its child refuses a second start. The child's output goes to a log file in
the data directory, which the page shows; a small JSON file beside it says who started it and when,
so the page still knows after a panel restart.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.panel.run_files import log_tail
from edge.store.frame_store import utc_now
from edge.store.processes import nightly_command, nightly_owner

LAUNCH_DIR = "panel"  # under the data directory
LOG_NAME = "nightly-launch.log"
RECORD_NAME = "nightly-launch.json"


class LaunchRefused(RuntimeError):
    """A night cannot be started now; the message says why and what to do."""


@dataclass
class LaunchRecord:
    pid: int
    by: str
    started_utc: str
    window_h: float | None
    returncode: int | None = None  # known only to the panel process that started it


@dataclass
class LaunchState:
    running: str | None  # who holds the nightly lock now ("beltcam nightly (pid N, since T)")
    starting: bool  # the panel's child is alive but has not taken the lock yet
    last: LaunchRecord | None  # the last night started from the panel
    output: str  # the end of its output

    @property
    def busy(self) -> bool:
        return self.running is not None or self.starting


class NightlyLauncher:
    """One per panel app: starts nights for one site and remembers the last one it started."""

    def __init__(self, config_path: Path | None, data_dir: Path) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.folder = data_dir / LAUNCH_DIR
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _child_alive(self) -> bool:
        return self._child is not None and self._child.poll() is None  # poll also reaps an ended child

    def _record(self) -> LaunchRecord | None:
        try:
            record = LaunchRecord(**json.loads((self.folder / RECORD_NAME).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if self._child is not None and self._child.pid == record.pid:
            record.returncode = self._child.poll()
        return record

    def state(self) -> LaunchState:
        with self._lock:
            running = nightly_owner(self.data_dir)
            starting = running is None and self._child_alive()
            return LaunchState(running, starting, self._record(), log_tail(self.folder / LOG_NAME))

    def start(self, by: str, window_h: float | None = None) -> LaunchRecord:
        """Start a night now; raises LaunchRefused while one runs or is starting."""
        if self.config_path is None:
            raise LaunchRefused("this panel was started without a site file path: start the night with "
                                "`beltcam nightly --config F`")  # fmt: skip
        with self._lock:
            owner = nightly_owner(self.data_dir)
            if owner is not None:
                raise LaunchRefused(
                    f"a night is already running ({owner}): it trains until it finishes or its window "
                    "closes; start another one after it ends"
                )
            if self._child_alive():
                raise LaunchRefused(
                    f"the night started from the panel (pid {self._child.pid}) is still starting"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            command = nightly_command(self.config_path.resolve(), window_h)
            with (self.folder / LOG_NAME).open("w", encoding="utf-8") as log:
                log.write("$ beltcam " + " ".join(command[3:]) + "\n")
                log.flush()
                self._child = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            # reaped as soon as it ends, not at the next page view (no zombie in the meantime)
            threading.Thread(target=self._child.wait, name="nightly-reaper", daemon=True).start()
            record = LaunchRecord(self._child.pid, by, utc_now().isoformat(timespec="seconds"), window_h)
            (self.folder / RECORD_NAME).write_text(json.dumps(asdict(record)), encoding="utf-8")
            return record

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the child this panel started (tests, shutdown); its exit code, None if none."""
        if self._child is None:
            return None
        try:
            return self._child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
