"""`beltcam models list|show|promote|rollback`: the model registry, for a technician.

A promote or rollback changes the registry's live model; a running agent reads it every
`live.model_check_s` and swaps between two frames, so no restart is needed.
"""

from __future__ import annotations

import argparse
import json

from edge.cli.common import add_config, open_store, positive_int
from edge.config import SiteConfig
from edge.store.registry import model_entry, models, promote, rollback


def add_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("models", help="the model registry: list, show, promote, rollback")
    actions = group.add_subparsers(dest="models_command", metavar="list|show|promote|rollback", required=True)
    listing = actions.add_parser("list", help="every model, newest first, with its status and figures")
    add_config(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = actions.add_parser("show", help="one model: its run, gate figures and why it has its status")
    add_config(show)
    show.add_argument("model", type=positive_int, help="model id (beltcam models list)")
    chosen = actions.add_parser("promote", help="make a model live (the running agent swaps to it)")
    add_config(chosen)
    chosen.add_argument("model", type=positive_int, help="model id (beltcam models list)")
    back = actions.add_parser("rollback", help="bring back the model that was live before this one")
    add_config(back)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    store = open_store(config)
    try:
        if args.models_command == "list":
            return _list(store, args.json)
        if args.models_command == "show":
            print(json.dumps(model_entry(store, args.model).as_json(), indent=2))
            return 0
        if args.models_command == "promote":
            promote(store, args.model, "promoted by hand (beltcam models promote)")
            swap = config.live.model_check_s
            print(f"model {args.model} is live; a running agent swaps to it within {swap:g} s")
            return 0
        was, now = rollback(store, "rolled back by hand (beltcam models rollback)")
        print(f"model {now} is live again, model {was} rejected; a running agent swaps within "
              f"{config.live.model_check_s:g} s")  # fmt: skip
        return 0
    finally:
        store.close()


def _list(store, as_json: bool) -> int:
    entries = models(store)
    if as_json:
        for entry in entries:
            print(json.dumps(entry.as_json()))
        return 0
    if not entries:
        print("no models yet: the nightly loop or `beltcam train` makes them")
        return 0
    print(f"{'id':>4}  {'status':<9} {'created (UTC)':<17} {'quality':<16} reason")
    for entry in entries:
        gone = " (files removed)" if entry.files_removed else ""
        print(f"{entry.id:>4}  {entry.status:<9} {entry.created_utc:%Y-%m-%d %H:%M} "
              f"{entry.quality():<16} {entry.reason or ''}{gone}")  # fmt: skip
    return 0
