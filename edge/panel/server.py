"""The panel served by waitress (a production WSGI server, never Flask's debug server) on a thread
of its own, so the agent can start and stop it with its other workers."""

from __future__ import annotations

import logging
import threading

from flask import Flask
from waitress import create_server

from edge.panel.context import PanelContext

log = logging.getLogger(__name__)
STOP_S = 5.0


class PanelUnavailable(OSError):
    """The panel cannot listen where the site file says (port in use, address not on this machine)."""


class PanelServer:
    def __init__(self, app: Flask, context: PanelContext) -> None:
        settings = context.config.panel
        self.context = context
        # binds now: a port in use fails here, with the address, not later on the thread
        try:
            self._server = create_server(
                app, host=settings.host, port=settings.port, threads=settings.threads, ident="beltcam",
                channel_timeout=60, clear_untrusted_proxy_headers=True,
            )  # fmt: skip
        except OSError as error:
            raise PanelUnavailable(
                f"panel: cannot listen on {settings.host}:{settings.port}: {error.strerror or error} "
                "(panel.host / panel.port in the site file, or --host/--port)"
            ) from None
        self._thread = threading.Thread(target=self._server.run, name="panel", daemon=True)

    @property
    def url(self) -> str:
        host = self.context.config.panel.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{self._server.effective_port}/"

    @property
    def port(self) -> int:
        return self._server.effective_port

    def start(self) -> None:
        self._thread.start()
        log.info("panel at %s", self.url)

    def close(self) -> None:
        """End the live streams, stop accepting, close every connection and the server's loop."""
        self.context.stopping.set()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_S)
        for channel in list(self._server._map.values()):  # waitress' loop ends once its map is empty
            channel.close()
        self._thread.join(timeout=STOP_S)
        if self._thread.is_alive():
            log.warning("panel server did not stop within %.0f s", STOP_S)
