"""`beltcam panel`: the technician's panel on its own, without the agent (the agent serves it too):
for a look at recordings, models and health while the belt is stopped or the agent runs elsewhere."""

from __future__ import annotations

import argparse
import signal
import threading

from edge.cli.common import add_config, number_type, open_store
from edge.cli.safe_mode import add_safe_mode_option
from edge.config import SiteConfig
from edge.panel.app import create_app
from edge.panel.context import PanelContext
from edge.panel.server import PanelServer
from edge.store.users import users


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("panel", help="the technician's panel on its own (the agent serves it too)")
    add_config(parser)
    parser.add_argument("--host", help="listen address (default: panel.host in the site file)")
    port = number_type(0, 65535, low_allowed=True, integer=True)
    parser.add_argument("--port", type=port, help="port, 0..65535 (default: panel.port in the site file)")
    add_safe_mode_option(parser)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    config = config.model_copy(update={"panel": config.panel.model_copy(update=overrides)})
    store = open_store(config)
    try:
        context = PanelContext(config, store, args.config if args.config is not None else args.default_config)
        server = PanelServer(create_app(context), context.config.panel, context.stopping)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        server.start()
        print(f"panel at {server.url} (Ctrl-C stops it)")
        if not users(store):
            print("no users yet: add one with `beltcam users add NAME --role technician`")
        stop.wait()
        server.close()
        return 0
    finally:
        store.close()
