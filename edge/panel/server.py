"""The panel (or the safe-mode panel) served by waitress, a production WSGI server, never Flask's
debug server, on a thread of its own, so the agent can start and stop it with its other workers."""

from __future__ import annotations

import contextlib
import logging
import threading

from flask import Flask
from waitress import create_server

from edge.config import PanelConfig

log = logging.getLogger(__name__)
STOP_S = 5.0


class PanelUnavailable(OSError):
    """The panel cannot listen where the site file says (port in use, address not on this machine)."""


class PanelServer:
    def __init__(
        self, app: Flask, settings: PanelConfig, stopping: threading.Event | None = None, name: str = "panel"
    ) -> None:
        self.host = settings.host
        self.name = name
        self.stopping = stopping or threading.Event()  # set at close: long responses (live streams) end
        # binds now: a port in use fails here, with the address, not later on the thread
        try:
            self._server = create_server(
                app, host=settings.host, port=settings.port, threads=settings.threads, ident="beltcam",
                channel_timeout=60, clear_untrusted_proxy_headers=True,
            )  # fmt: skip
        except OSError as error:
            raise PanelUnavailable(
                f"{name}: cannot listen on {settings.host}:{settings.port}: {error.strerror or error} "
                "(panel.host / panel.port in the site file, or --host/--port)"
            ) from None
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self._server.effective_port}/"

    @property
    def port(self) -> int:
        return self._server.effective_port

    def start(self) -> None:
        self._thread.start()
        log.info("%s at %s", self.name, self.url)

    def close(self) -> None:
        """End the long responses and let every response under way finish (a connection closed while
        its task thread still writes to it raises in that thread), then close the listening socket and
        every connection from the server's own loop thread (closing them from here would race its
        poll), which ends the loop."""
        self.stopping.set()  # live streams end within a second
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_S)
        with contextlib.suppress(OSError):  # its trigger is closed already: the loop is ending or has ended
            self._server.trigger.pull_trigger(self._close_all)
        self._thread.join(timeout=STOP_S)
        if self._thread.is_alive():
            log.warning("%s server did not stop within %.0f s", self.name, STOP_S)

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):  # waitress' loop ends once its map is empty
            channel.close()
