"""`beltcam users add|remove|list|password`: who may log in to the panel, and with which role.

Passwords are asked at a prompt (twice) or read from standard input with `--password-stdin` (one
line, for scripts); they never appear on a command line, where `ps` and the shell history see them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from edge.cli.common import add_config, open_store
from edge.config import SiteConfig
from edge.store.users import ROLES, UserError, add_user, remove_user, set_password, users


def add_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("users", help="panel users: add, remove, list, password")
    actions = group.add_subparsers(dest="users_command", metavar="add|remove|list|password", required=True)
    add = actions.add_parser("add", help="a new user (the password is asked for)")
    add_config(add)
    add.add_argument("name")
    add.add_argument(
        "--role", choices=ROLES, default="viewer", help="technician: may also act (default: viewer)"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password = actions.add_parser("password", help="set a user's password")
    add_config(password)
    password.add_argument("name")
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    remove = actions.add_parser("remove", help="remove a user")
    add_config(remove)
    remove.add_argument("name")
    listing = actions.add_parser("list", help="every user with role and last login")
    add_config(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    store = open_store(config)
    try:
        if args.users_command == "add":
            entry = add_user(store, args.name, _password(args.password_stdin), args.role)
            print(f"user {entry.name} added ({entry.role})")
        elif args.users_command == "password":
            set_password(store, args.name, _password(args.password_stdin))
            print(f"password of {args.name} changed")
        elif args.users_command == "remove":
            remove_user(store, args.name)
            print(f"user {args.name} removed")
        else:
            _list(store, args.json)
        return 0
    finally:
        store.close()


def _list(store, as_json: bool) -> None:
    entries = users(store)
    if as_json:
        for entry in entries:
            print(
                json.dumps(
                    {
                        "name": entry.name,
                        "role": entry.role,
                        "created_utc": entry.created_utc.isoformat(),
                        "last_login_utc": entry.last_login_utc and entry.last_login_utc.isoformat(),
                    }
                )
            )
        return
    if not entries:
        print("no users yet: `beltcam users add NAME --role technician`")
    for entry in entries:
        last = entry.last_login_utc.strftime("%Y-%m-%d %H:%M") if entry.last_login_utc else "never"
        print(f"{entry.name:<24} {entry.role:<11} last login {last}")
