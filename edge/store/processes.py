"""The `beltcam` commands that other rooms start as processes of their own, and who runs a night now.

The agent's nightly scheduler and the panel's Training page both start `beltcam nightly`; the panel's
Calibration page runs `beltcam calibrate` steps. Their command lines are made here, in a bottom room,
so that the rooms side by side (nightly, panel) start the very same command without importing each
other. Whether a night already runs is the nightly lock's word (`edge.store.lock`): the command
takes it itself, so a second night refuses whoever started it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge.store.lock import NIGHTLY_LOCK_FILE, DataDirLock


def beltcam_command(*args: str) -> list[str]:
    """`beltcam ARGS` with this interpreter: the child sees the same installation as its parent,
    whatever PATH says."""
    return [sys.executable, "-m", "edge.cli", *args]


def nightly_command(config_path: Path | str, window_h: float | None = None, nice: bool = True) -> list[str]:
    """`beltcam nightly` for a site: for `window_h` hours (default: the site's `schedule.window_h`),
    at the site's lowered CPU and I/O priority unless `nice` is False."""
    command = beltcam_command("nightly", "--config", str(config_path))
    if window_h is not None:
        command += ["--window-h", f"{window_h:.4f}"]
    return command + (["--nice"] if nice else [])


def nightly_owner(data_dir: Path) -> str | None:
    """Who runs a night on this data directory now ("beltcam nightly (pid N, since T)"), or None."""
    return DataDirLock(data_dir, "beltcam nightly", NIGHTLY_LOCK_FILE).owner()
