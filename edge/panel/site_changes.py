"""What a change of the site file means: the diff a technician confirms, and which of the agent's
workers read the settings that changed (and so need a restart to apply them).

The agent reads the site file once, at start; each worker keeps what it was given. A save therefore
changes nothing until the workers that use the changed keys start again, and the page says which.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from edge.config import redact_credentials

RECORDING = "recording"
LIVE = "live path"
LINK = "actuator link"
PANEL = "panel"
NIGHTLY = "nightly timer"
EVERY_WORKER = (RECORDING, LIVE, LINK, PANEL, NIGHTLY)
WORKERS = {
    RECORDING: "cameras, capture threads and the recorder",
    LIVE: "segmenter, belt tracker, ejection planner and dispatcher",
    LINK: "the link to the valve controller",
    PANEL: "this panel",
    NIGHTLY: "the nightly training timer (each nightly run reads the file when it starts)",
}
# Which workers read a key. The longest matching dotted prefix wins; a key not listed here (a new
# section nobody mapped yet) restarts everything, which is never wrong, only slower.
READERS: dict[str, tuple[str, ...]] = {
    "site_name": (PANEL,),
    "cameras": (RECORDING, LIVE),
    "storage": (RECORDING,),
    "storage.data_dir": EVERY_WORKER,  # the store every worker reads or writes
    "storage.database_url": EVERY_WORKER,
    "recorder": (RECORDING,),
    "simulator": (RECORDING,),
    "simulator.ejector": (RECORDING, LIVE, LINK),  # the simulated nozzle bank is in the calibration
    "model": (NIGHTLY,),
    "schedule": (NIGHTLY,),
    "calibration_file": (LIVE, LINK),
    "bridge": (LINK,),
    "bridge.lead_ms": (LIVE,),  # the ejection planner's lead
    "bridge.spare_legal": (LIVE,),  # the ejection planner's lanes
    "bridge.spare_clearance_mm": (LIVE,),
    "live": (LIVE,),
    "panel": (PANEL,),
}


def changed_keys(before: object, after: object, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ (list items by index: `cameras.0.fps`)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = list(before) + [key for key in after if key not in before]
        found: list[str] = []
        for key in keys:
            found += changed_keys(before.get(key), after.get(key), f"{prefix}{key}.")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found += changed_keys(old, new, f"{prefix}{index}.")
        return found
    return [] if before == after else [prefix.rstrip(".")]


def _readers(key: str) -> tuple[str, ...]:
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = READERS.get(".".join(parts[:end]))
        if found is not None:
            return found
    return EVERY_WORKER


def affected_workers(keys: Iterable[str]) -> list[str]:
    """The workers that read any of `keys`, in the agent's order."""
    hit = {worker for key in keys for worker in _readers(key)}
    return [worker for worker in EVERY_WORKER if worker in hit]


def unified_diff(before: str, after: str, name: str) -> str:
    """The change as a unified diff, passwords redacted (it is shown in a browser)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{name} (now)", tofile=f"{name} (after saving)",
    )  # fmt: skip
    return "".join(
        redact_credentials(line) if line.endswith("\n") else redact_credentials(line) + "\n" for line in lines
    )
