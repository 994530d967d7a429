"""Telling systemd how the agent is (sd_notify, through the sdnotify library): READY when it works,
watchdog pings while it makes progress, a STATUS line for `systemctl status`, STOPPING at the end.
Under the `Type=notify` unit of `beltcam service`; nothing happens without NOTIFY_SOCKET."""

from __future__ import annotations

import os

from sdnotify import SystemdNotifier


def tell_systemd(message: str) -> None:
    if os.environ.get("NOTIFY_SOCKET"):
        SystemdNotifier().notify(message)  # errors are swallowed: systemd going away must not stop us


def watchdog_period_s() -> float | None:
    """Half of the unit's WatchdogSec (systemd passes it as WATCHDOG_USEC), or None without one."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
