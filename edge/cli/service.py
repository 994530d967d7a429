"""`beltcam service install|status`: the agent as a systemd service that survives reboots and crashes.

The unit restarts the agent when it fails (at most `--burst` times in 10 minutes, then it stays down
for a person to look), expects `READY=1` and a watchdog ping from the agent (Type=notify,
WatchdogSec: the agent pings only while its live path and recorder make progress, so a hung agent is
restarted, not just a dead one), starts after the network (IP cameras, Modbus) and the site's USB
cameras and serial valve link (edge/cli/unit_devices.py) and logs to the journal with levels.
`--dry-run` prints the unit instead of installing it.
"""

from __future__ import annotations

import argparse
import getpass
import pwd
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

from edge.capture.report import camera_reports, report_lines
from edge.cli.common import add_config, open_store, positive_int
from edge.cli.unit_devices import UDEV_RULE, UDEV_RULE_NAME, device_paths, device_unit, needs_udev_rule
from edge.config import ConfigError, SiteConfig
from edge.store.lock import DataDirLock

UNIT_NAME = "beltcam.service"
MEMORY_LIMIT = re.compile(r"infinity|\d+(\.\d+)?[KMGT]?|\d+(\.\d+)?%")  # what systemd takes
UNIT_DIR = Path("/etc/systemd/system")
UDEV_DIR = Path("/etc/udev/rules.d")
STATUS_PROPERTIES = ("ActiveState", "SubState", "NRestarts", "ExecMainStartTimestamp", "Result", "MainPID")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("service", help="the agent as a systemd service: install, status",
                                description=" ".join(__doc__.split("\n\n")[0].split()))  # fmt: skip
    actions = group.add_subparsers(dest="service_command", metavar="install|status", required=True)
    install = actions.add_parser("install", help="write the unit, reload systemd, enable it")
    add_config(install)
    install.add_argument("--dry-run", action="store_true", help="print the unit, change nothing")
    install.add_argument(
        "--unit-dir", type=Path, default=UNIT_DIR, help=f"where units go (default {UNIT_DIR})"
    )
    install.add_argument(
        "--user", default=getpass.getuser(), help="run the agent as this user (default: you)"
    )
    install.add_argument("--watchdog-s", type=positive_int, default=30, help="restart when silent this long")
    install.add_argument("--burst", type=positive_int, default=5, help="restarts allowed in 10 minutes")
    install.add_argument("--no-enable", action="store_true", help="write the unit only")
    install.add_argument(
        "--udev-dir", type=Path, default=UDEV_DIR,
        help=f"where the rule giving V4L2 cameras device units goes (default {UDEV_DIR})",
    )  # fmt: skip
    install.add_argument(
        "--memory-max", default="80%", help="memory limit (systemd MemoryMax=, e.g. 6G or 80%%)"
    )
    status = actions.add_parser("status", help="the unit's state and the agent's own health")
    add_config(status)


def unit_text(
    config_path: Path, user: str, watchdog_s: int, burst: int, memory_max: str, devices: list[str]
) -> str:
    """`devices`: the device files of the site's cameras and valve link (unit_devices.device_paths)."""
    executable = Path(sys.executable).with_name("beltcam")
    command = _quoted(executable) if executable.exists() else f"{_quoted(Path(sys.executable))} -m edge.cli"
    site = config_path.resolve()
    units = " ".join(device_unit(path) for path in devices)
    waits = (
        f"# the site's cameras and valve link: waited for up to systemd's device timeout, then the agent\n"
        f"# starts anyway and reconnects to what comes late\nWants={units}\n"
        if devices
        else ""
    )
    return f"""[Unit]
Description=beltcam agent ({_specifiers_escaped(str(site))})
Documentation=file://{_specifiers_escaped(urllib.parse.quote(str(site.parent)))}
Wants=network-online.target
{waits}After=network-online.target{" " + units if devices else ""}
StartLimitIntervalSec=600
StartLimitBurst={burst}

[Service]
Type=notify
NotifyAccess=main
User={user}
WorkingDirectory={_specifiers_escaped(str(site.parent))}
ExecStart={command} run --config {_quoted(site)}
Restart=on-failure
RestartSec=5
WatchdogSec={watchdog_s}
TimeoutStartSec=300
TimeoutStopSec=60
KillSignal=SIGTERM
MemoryMax={memory_max}
LimitNOFILE=65536
Environment=PYTHONUNBUFFERED=1
StandardOutput=journal
StandardError=journal
SyslogIdentifier=beltcam
SyslogLevelPrefix=true

[Install]
WantedBy=multi-user.target
"""


def _specifiers_escaped(text: str) -> str:
    """systemd expands `%` specifiers in unit settings: a literal one is written `%%`."""
    return text.replace("%", "%%")


def _quoted(path: Path) -> str:
    """A path as one word of a systemd command line (spaces, quotes, backslashes and `%` kept)."""
    text = _specifiers_escaped(str(path)).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"' if any(char.isspace() or char in "\"'\\;" for char in str(path)) else text


def _checked(args: argparse.Namespace) -> None:
    """What systemd would ignore or fail on later, refused now with the reason."""
    try:
        pwd.getpwnam(args.user)
    except KeyError:
        raise ConfigError(
            f"service: --user {args.user}: no such user on this machine (useradd it first)"
        ) from None
    limit = args.memory_max
    if not MEMORY_LIMIT.fullmatch(limit) or (limit.endswith("%") and float(limit[:-1]) > 100):
        raise ConfigError(
            f"service: --memory-max {args.memory_max!r}: a size such as 6G, 512M or 80% (at most 100%), "
            "or infinity"
        )
    for flag, folder in (("--unit-dir", args.unit_dir), ("--udev-dir", args.udev_dir)):
        if not args.dry_run and not folder.is_dir():
            raise ConfigError(f"service: {flag} {folder}: no such folder")


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    config_path = args.config if args.config is not None else args.default_config
    if args.service_command == "install":
        _checked(args)
        devices = device_paths(config)
        text = unit_text(config_path, args.user, args.watchdog_s, args.burst, args.memory_max, devices)
        rule = needs_udev_rule(devices)
        if args.dry_run:
            print(text, end="")
            if rule:
                print(f"\n# and {args.udev_dir / UDEV_RULE_NAME}:\n{UDEV_RULE}", end="")
            return 0
        path = args.unit_dir / UNIT_NAME
        path.write_text(text, encoding="utf-8")
        print(f"unit written: {path}")
        if rule:
            _install_udev_rule(args.udev_dir)
        if args.no_enable:
            print("not enabled (--no-enable): `systemctl daemon-reload && systemctl enable --now beltcam`")
            return 0
        if shutil.which("systemctl") is None:
            print("no systemctl here: enable it by hand (`systemctl enable --now beltcam`)")
            return 0
        for step in (["daemon-reload"], ["enable", UNIT_NAME]):
            done = subprocess.run(["systemctl", *step], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"systemctl {' '.join(step)} failed: {done.stderr.strip()}", file=sys.stderr)
                return 1
        print("enabled; start it with `systemctl start beltcam` (or reboot)")
        return 0
    return _status(config)


def _install_udev_rule(udev_dir: Path) -> None:
    """The rule giving V4L2 cameras device units, applied to the devices already plugged in."""
    path = udev_dir / UDEV_RULE_NAME
    path.write_text(UDEV_RULE, encoding="utf-8")
    print(f"udev rule written: {path}")
    if shutil.which("udevadm") is None:
        print("no udevadm here: the rule applies from the next boot")
        return
    for step in (["control", "--reload"], ["trigger", "--subsystem-match=video4linux", "--action=add"]):
        done = subprocess.run(["udevadm", *step], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"udevadm {' '.join(step)}: {done.stderr.strip()} (the rule applies from the next boot)")
            return


def _status(config: SiteConfig) -> int:
    unit = _unit_state()
    print(f"service: {unit}")
    holder = DataDirLock(config.storage.data_dir, "beltcam service status").owner()
    print(f"agent: {holder or 'not running (nobody holds the data directory)'}")
    store = open_store(config)
    try:
        for line in report_lines(camera_reports(store), []):
            print(line)
    finally:
        store.close()
    return 0 if holder else 1


def _unit_state() -> str:
    if shutil.which("systemctl") is None:
        return "unknown (no systemctl on this machine)"
    done = subprocess.run(["systemctl", "show", UNIT_NAME, *(f"--property={p}" for p in STATUS_PROPERTIES)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        return f"unknown ({done.stderr.strip() or 'systemctl failed'})"
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if values.get("ActiveState") in (None, "", "inactive") and values.get("SubState") in (None, "", "dead"):
        return "not running" + (
            f" ({values['Result']})" if values.get("Result") not in (None, "", "success") else ""
        )
    since = values.get("ExecMainStartTimestamp") or "?"
    return (f"{values.get('ActiveState')}/{values.get('SubState')}, pid {values.get('MainPID')}, "
            f"since {since}, restarts {values.get('NRestarts', '?')}")  # fmt: skip
