"""Safe mode of `beltcam run`, `demo` and `panel`: an invalid site file starts a minimal panel that
shows the error and lets a technician fix the file, instead of a service crashing in a loop.

The command waits until the file is valid (fixed in that panel, with the key printed here, or
edited on the machine: it is checked every few seconds) and then goes on in the same process with
the fixed file: `run`/`demo` start the agent, `panel` the panel, on the same address. Ctrl-C or
SIGTERM while waiting ends it with the usual one-line error (exit 2), and so does the end of
`run`/`demo --duration S` (a bounded run stays bounded with a bad file). A missing or unreadable file
is not "invalid": that stays an immediate error, as does every other command's bad file, and
`--no-safe-mode` turns safe mode off (scripts that want the error at once). For `run`/`demo` a
site with `panel.enabled: false` gets no safe mode either: no panel is what it asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from edge.cli.systemd_notify import tell_systemd
from edge.config import ConfigError, SiteConfig, load_config, redact_credentials
from edge.panel.safe_mode import SafeModeState, create_safe_app, lenient_panel_settings
from edge.panel.server import PanelServer

log = logging.getLogger(__name__)
COMMANDS = {"run": "the agent starts with it now", "demo": "the agent starts with it now",
            "panel": "the panel starts with it now"}  # fmt: skip
TICK_S = 0.2
CHECK_FILE_S = 2.0
ANSWER_S = 0.5  # the browser that saved the fix gets its answer before the safe-mode panel closes


def add_safe_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-safe-mode", action="store_true",
        help="an invalid site file is an error at once (default: a safe-mode panel to fix it, docs/panel.md)",
    )  # fmt: skip


def load_or_fix(path: Path, args: argparse.Namespace) -> SiteConfig:
    """The site, once valid: load_config's result, or, for run/demo/panel with a file that exists
    but is invalid, after safe mode got it fixed."""
    try:
        return load_config(path)
    except ConfigError as error:
        if args.command not in COMMANDS or getattr(args, "no_safe_mode", True) or not _readable(path):
            raise
        fixed, last_error = wait_for_fix(path, error, args)
        if not fixed:
            raise ConfigError(last_error) from None
    return load_config(path)


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event):
    """Ctrl-C and SIGTERM end the wait (handlers only on the main thread, where Python allows them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_for_fix(
    path: Path, error: ConfigError, args: argparse.Namespace, stop: threading.Event | None = None
):
    """Serve the safe-mode panel until the file is valid or the command is stopped:
    (fixed, the error the file has last)."""
    seen = _stamp(path)  # before anything is said: a fix made as soon as the key shows is noticed
    settings = lenient_panel_settings(path.read_text(encoding="utf-8", errors="replace"))
    if args.command != "panel" and not settings.enabled:
        log.error("no safe mode: panel.enabled is false in %s", path)
        return False, str(error)
    overrides = {key: getattr(args, key, None) for key in ("host", "port")}
    settings = settings.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    state = SafeModeState(path, str(error), then=COMMANDS[args.command])
    stop = stop or threading.Event()
    duration = getattr(args, "duration", None)  # `run/demo --duration S` bounds the wait too
    timed_out = threading.Event()  # not Timer.finished: a cancelled timer is "finished" too

    def end_wait() -> None:
        timed_out.set()
        stop.set()

    deadline = threading.Timer(duration, end_wait) if duration is not None else None
    with _stopped_by_signals(stop):  # before anything is announced: a stop right after READY is heard
        server = PanelServer(create_safe_app(state), settings, name="safe-mode panel")
        server.start()
        try:
            print(
                f"beltcam: the site file is invalid: {redact_credentials(str(error))}",
                file=sys.stderr,
                flush=True,
            )
            print(
                f"safe mode: fix it at {server.url} with the key {state.key} (new at every start), or edit "
                f"the file here: it is checked every {CHECK_FILE_S:.0f} s; Ctrl-C stops", flush=True,
            )  # fmt: skip
            tell_systemd(f"READY=1\nSTATUS=safe mode: the site file is invalid, fix it at {server.url}")
            if deadline is not None:
                deadline.daemon = True
                deadline.start()
            _watch(state, stop, seen)
            if state.fixed.is_set():
                stop.wait(ANSWER_S)
        finally:
            if deadline is not None:
                deadline.cancel()
            server.close()
    if timed_out.is_set() and not state.fixed.is_set():
        print(f"safe mode: --duration {duration:g} s is over and {path} is still invalid", flush=True)
    if state.fixed.is_set():
        print(f"safe mode: {path} is valid now: {state.then}", flush=True)
        tell_systemd(f"STATUS=site file fixed: {state.then}")
    return state.fixed.is_set(), state.error


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size


def _watch(state: SafeModeState, stop: threading.Event, seen: tuple[int, int] | None) -> None:
    """Wait for the panel's fix, and notice a file fixed on the machine (an editor over ssh)."""
    waited = 0.0
    while not stop.is_set() and not state.fixed.wait(TICK_S):
        waited += TICK_S
        if waited < CHECK_FILE_S:
            continue
        waited = 0.0
        tell_systemd("WATCHDOG=1")
        stamp = _stamp(state.path)
        if stamp == seen:
            continue
        seen = stamp
        try:
            load_config(state.path)
        except ConfigError as still:
            state.error = str(still)
            print(
                f"safe mode: the file changed and is still invalid: {redact_credentials(state.error)}",
                flush=True,
            )
            continue
        state.fixed.set()
