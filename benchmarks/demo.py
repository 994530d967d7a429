"""How long `beltcam demo` takes, from nothing, to live masks and valve openings: the README's first
command (configs/simulated.yaml) in a fresh data directory, as a subprocess, its output timed line
by line (the running scoreboard included).

    .venv/bin/python -m benchmarks.demo [--duration 60]

Prints and writes results/demo.json: seconds from the start to the starter model going live, to the
first segmented frame, to the first command sent to the valves, and the run's scoreboard.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import describe_machine, run_record, write_results

SITE_FILE = Path(__file__).resolve().parent.parent / "configs" / "simulated.yaml"
STATUS = re.compile(r"live: (\d+)/\d+ frames, \d+ objects, (\d+) commands")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_site(folder: Path) -> Path:
    """The simulated site file with its data directory in `folder` and a free panel port."""
    site = yaml.safe_load(SITE_FILE.read_text(encoding="utf-8"))
    site["storage"]["data_dir"] = str(folder / "data")
    site["calibration_file"] = str(folder / "data" / "calibration.yaml")
    site["panel"] = {**site.get("panel", {}), "port": free_port()}
    path = folder / "beltcam.yaml"
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    return path


def timed_lines(command: list[str]) -> tuple[list[tuple[float, str]], int]:
    """Every line (and every carriage-returned progress update) the command prints, with the
    seconds since its start; its exit code."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, pending = [], b""
    while chunk := process.stdout.read1(4096):
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        lines.extend((time.monotonic() - started, line.decode(errors="replace")) for line in complete if line)
    return lines, process.wait()


def first(lines: list[tuple[float, str]], matches) -> float | None:
    return next((round(at, 1) for at, line in lines if matches(line)), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds the agent runs once live")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = folder / "report.json"
        beltcam = str(Path(sys.executable).parent / "beltcam")
        site = fresh_site(folder)
        command = [
            beltcam,
            "demo",
            "--config",
            str(site),
            "--duration",
            str(args.duration),
            "--report",
            str(report),
        ]
        lines, code = timed_lines(command)
        if code != 0:
            print("\n".join(line for _, line in lines[-20:]))
            raise SystemExit(f"beltcam demo exited {code}")
        scoreboard = json.loads(report.read_text())

    def status(line: str, frames: int = 0, commands: int = 0) -> bool:
        found = STATUS.search(line)
        return bool(found) and int(found[1]) >= frames and int(found[2]) >= commands

    row = {
        "model_live_s": first(lines, lambda line: line.startswith("starter model live")),
        "first_frame_segmented_s": first(lines, lambda line: status(line, frames=1)),
        "first_command_sent_s": first(lines, lambda line: status(line, commands=1)),
        "total_s": round(lines[-1][0], 1),
        "duration_s": args.duration,
        **{key: scoreboard.get(key) for key in ("recall", "false_ejections", "late", "frames_processed",
                                                "frames_captured", "model")},
    }  # fmt: skip
    print(f"\n`beltcam demo` from a fresh data directory ({describe_machine()})")
    for key, value in row.items():
        print(f"{key:>24}: {value}")
    write_results("demo", row)
    write_results("demo_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
