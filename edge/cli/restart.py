"""The agent's restart, asked for by the panel's Settings page after the site file was saved.

Every worker reads the site file once, when the agent starts, and most of them hold what they were
built from (camera devices, the store, the actuator link's session, the panel's port). Rebuilding
some of them inside a running agent would need each to support it; instead the whole agent stops
exactly as on SIGTERM (recordings closed, due commands sent, valves closed, store closed, data
directory unlocked) and the same command is executed again in this process's place (same PID, so
a service manager sees no exit), which reads the saved file. The page names the workers whose
settings changed; the others simply start again as they were.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
ANSWER_S = 1.0  # the page that asked gets its answer before the panel stops


def same_command() -> list[str]:
    """This process's command line as it was typed (`python -m edge.cli run ...` or the `beltcam`
    script), with the interpreter it runs on."""
    original = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return [sys.executable, *original[1:]]


class AgentRestart:
    """The callable the panel gets (PanelContext.restart): asks the agent to stop, and remembers
    that the command must run again once everything is closed."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._stop: Callable[[], None] | None = None

    def bind(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    def __call__(self) -> None:
        if self._stop is None or self.requested.is_set():
            return
        log.warning("restart asked from the panel: stopping the agent, then starting it again")
        self.requested.set()
        timer = threading.Timer(ANSWER_S, self._stop)
        timer.daemon = True
        timer.start()

    def exec_if_requested(self, execv: Callable[[str, list[str]], None] = os.execv) -> None:
        """Called after the agent has stopped and released everything; does not return when a
        restart was asked for."""
        if not self.requested.is_set():
            return
        argv = same_command()
        print("restarting the agent with the saved site file", flush=True)
        sys.stderr.flush()
        for handler in logging.getLogger().handlers:
            handler.flush()
        execv(argv[0], argv)
