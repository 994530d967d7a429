"""`beltcam init`: the first site file, written with the technician at the machine.

It lists the cameras plugged in (RealSense serial numbers, V4L2 devices), tries a typed URL or file
on the spot (one frame grabbed, its size taken as the camera's), asks which camera is C1 (before
the sorter) and which C2, the actuator link (serial ports listed, a Modbus controller tried), and the
data directory with the free space of its disk. Every answer can also come from a flag, so
`--yes` writes a file with no questions. The result is validated by the same rules as every site
file before it is written, and an existing file is never replaced without a yes (or `--force`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from edge.actuators.ports import modbus_reachable, serial_ports
from edge.config import DEFAULT_CONFIG_PATH, CameraConfig, ConfigError, load_config
from edge.sources.base import SourceError
from edge.sources.discovery import FoundCamera, cameras_present, try_camera

ATTEMPTS = 3
MODBUS_PORT = 502
HEADER = (
    "# beltcam site file written by `beltcam init`; every key is documented in docs/config.md.\n"
    "# Check it with `beltcam doctor`, then calibrate the site (docs/calibration.md).\n"
)


class InitError(ConfigError):
    """An answer that cannot make a site file; the message says which and why."""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("init", help="write a first site file for the cameras and link plugged in",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))  # fmt: skip
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"where to write (default: {DEFAULT_CONFIG_PATH})",
    )
    parser.set_defaults(default_config=DEFAULT_CONFIG_PATH)
    parser.add_argument("--site-name", help="a name for this belt")
    parser.add_argument(
        "--c1", help="C1 (before the sorter): a number from the list, a URL, a file, or `simulated`"
    )
    parser.add_argument("--c2", help="C2 (after the sorter): as --c1")
    parser.add_argument("--link", help="actuator link: simulator | modbus_tcp HOST[:PORT] | serial PORT")
    parser.add_argument("--data-dir", help="where frames, models and the database go (default: data)")
    parser.add_argument("--yes", action="store_true", help="ask nothing: flags and defaults only")
    parser.add_argument("--force", action="store_true", help="replace an existing site file")


class Answers:
    """Each answer from its flag when given, else from the terminal; with --yes, defaults only."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, question: str, default: str | None = None, given: str | None = None) -> str:
        if given is not None:
            return given
        if not self.interactive:
            if default is None:
                raise InitError(f"init: {question}: no answer (give it as a flag, see `beltcam init --help`)")
            return default
        shown = f" [{default}]" if default else ""
        try:
            answer = input(f"{question}{shown}: ").strip()
        except EOFError:
            raise InitError(f"init: {question}: no answer (input ended)") from None
        return answer or default or ""


def run(_config: None, args: argparse.Namespace) -> int:
    target: Path = args.config if args.config is not None else args.default_config
    answers = Answers(interactive=not args.yes)
    if target.exists() and not args.force and not _replace(answers, target):
        raise InitError(f"{target} exists: not replaced (--force replaces it)")
    site_name = answers.ask("site name", "beltcam", args.site_name)
    found = [] if "simulated" in (args.c1, args.c2) and args.yes else cameras_present()
    if found and answers.interactive:
        print("cameras found:")
        for number, camera in enumerate(found, start=1):
            print(f"  {number}. {camera.label}")
    elif answers.interactive:
        print("no camera found on this machine (type a URL or a file, or `simulated`)")
    cameras = [
        _camera("c1", "C1, before the sorter", found, answers, args.c1),
        _camera("c2", "C2, after the sorter", found, answers, args.c2),
    ]
    bridge = _link(answers, args.link)
    data_dir = _data_dir(answers, target, args.data_dir)
    site = {
        "site_name": site_name,
        "cameras": cameras,
        "storage": {"data_dir": data_dir},
        "calibration_file": str(Path(data_dir) / "calibration.yaml"),
        "bridge": bridge,
    }
    _write(target, site)
    print(f"site file written: {target}; next: `beltcam doctor --config {target}`, then calibrate")
    return 0


def _replace(answers: Answers, target: Path) -> bool:
    if not answers.interactive:
        return False
    return answers.ask(f"{target} exists: replace it? (y/N)", "n").lower() in ("y", "yes")


def _camera(camera_id: str, what: str, found: list[FoundCamera], answers: Answers, given: str | None) -> dict:
    question = f"{what}: a number from the list, a URL, a file, or `simulated`"
    default = "simulated" if not found else None
    for _ in range(ATTEMPTS):
        answer = answers.ask(question, default, given)
        try:
            return _camera_from(camera_id, answer, found)
        except (SourceError, ValueError) as error:
            if given is not None or not answers.interactive:
                raise InitError(f"init: {camera_id}: {error}") from None
            print(f"  {error}: try again")
    raise InitError(f"init: {camera_id}: no usable camera after {ATTEMPTS} tries")


def _camera_from(camera_id: str, answer: str, found: list[FoundCamera]) -> dict:
    if answer == "simulated":
        return {"id": camera_id, "kind": "simulated"}
    if answer.isdigit() and 1 <= int(answer) <= len(found):
        chosen = found[int(answer) - 1]
        if chosen.kind == "realsense":
            return {"id": camera_id, "kind": "realsense", "source": chosen.source}
        answer = chosen.source
    elif answer.isdigit() and not found:
        raise ValueError(
            f"{answer}: no camera was found on this machine to choose from: give a URL, a file or `simulated`"
        )
    elif answer.isdigit():
        raise ValueError(f"{answer} is not a number from the list (1..{len(found)})")
    if not answer:
        raise ValueError("no camera given")
    width, height = try_camera(CameraConfig(id=camera_id, kind="opencv", source=answer))
    print(f"  {camera_id}: {answer} delivers {width}x{height} frames")
    return {"id": camera_id, "kind": "opencv", "source": answer, "resolution": [width, height]}


def _data_dir(answers: Answers, target: Path, given: str | None) -> str:
    """A data directory beltcam can write (made now if missing), with the free space of its disk."""
    for _ in range(ATTEMPTS):
        answer = answers.ask("data directory (frames, models, database)", "data", given)
        where = target.parent / answer if not Path(answer).is_absolute() else Path(answer)
        try:
            where.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=where):
                pass
        except OSError as error:
            problem = f"{where}: cannot write there ({error.strerror})"
            if given is not None or not answers.interactive:
                raise InitError(f"init: data directory: {problem}") from None
            print(f"  {problem}: try again")
            continue
        print(f"data directory {where}: {shutil.disk_usage(where).free / 2**30:.1f} GB free on its disk")
        return answer
    raise InitError(f"init: data directory: no writable folder after {ATTEMPTS} tries")


def _link(answers: Answers, given: str | None) -> dict:
    ports = serial_ports()
    if answers.interactive and given is None and ports:
        print("serial ports: " + ", ".join(f"{device} ({text})" for device, text in ports))
    for _ in range(ATTEMPTS):
        answer = answers.ask(
            "actuator link: simulator | modbus_tcp HOST[:PORT] | serial PORT", "simulator", given
        )
        try:
            return _link_from(answer, ports)
        except ValueError as error:
            if given is not None or not answers.interactive:
                raise InitError(f"init: link: {error}") from None
            print(f"  {error}: try again")
    raise InitError(f"init: link: no usable actuator link after {ATTEMPTS} tries")


def _link_from(answer: str, ports: list[tuple[str, str]]) -> dict:
    kind, _, rest = answer.partition(" ")
    rest = rest.strip()
    if kind == "simulator":
        return {"transport": "simulator"}
    if kind == "serial" and rest:
        if rest not in [device for device, _ in ports]:
            print(f"  warning: {rest} is not among this machine's serial ports now")
        return {"transport": "serial", "serial_port": rest}
    if kind == "modbus_tcp" and rest:
        host, _, port = rest.partition(":")
        if not host:
            raise ValueError(f"{answer!r}: no host before the port (modbus_tcp HOST[:PORT])")
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{port!r} is not a port number (1..65535)")
        port_number = int(port or MODBUS_PORT)
        problem = modbus_reachable(host, port_number)
        print(
            f"  warning: no answer at {problem}: written anyway"
            if problem
            else f"  {host}:{port_number} answers"
        )
        return {"transport": "modbus_tcp", "host": host, "port": port_number}
    raise ValueError(f"{answer!r}: simulator, modbus_tcp HOST[:PORT] or serial PORT")


def _write(target: Path, site: dict) -> None:
    """Validated exactly as `load_config` will read it, then put in place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.init")
    staged.write_text(HEADER + yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    try:
        load_config(staged)
        with staged.open("rb") as file:
            os.fsync(file.fileno())
        staged.replace(target)
    finally:
        staged.unlink(missing_ok=True)
