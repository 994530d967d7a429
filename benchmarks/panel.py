"""The panel's live view on this machine: frames per second delivered to 1 and to 5 viewers, and
what watching costs the live path (its frame rate and the agent's CPU with 0, 1 and 5 viewers).

The agent runs as `beltcam run` on the simulated belt (C1/C2 640x480 at 10 fps, as the demo) with a
starter model live; each viewer is an HTTP client that logs in and reads `/live/c1.mjpg` the way a
browser's <img> does (multipart JPEG frames), so the server does the same work as for a browser.
Each configuration is measured over the same window after a warm-up.

    .venv/bin/python -m benchmarks.panel [--window-s 30] [--warmup-s 8]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
import yaml

from benchmarks.common import describe_machine, run_record, write_results
from edge.cli.main import main as beltcam
from edge.config import load_config
from edge.store.frame_store import FrameStore
from edge.store.users import add_user

PASSWORD = "benchmark password"
VIEWERS = (0, 1, 5)


def site(folder: Path, port: int) -> Path:
    path = folder / "beltcam.yaml"
    config = {
        "cameras": [
            {"id": c, "kind": "simulated", "resolution": [640, 480], "fps": 10} for c in ("c1", "c2")
        ],
        "storage": {"data_dir": "data", "min_free_mb": 1},
        "simulator": {"seed": 0},
        "model": {"backbone": "resnet18", "image_size": 128, "pretrained_weights": "random"},
        "calibration_file": "data/calibration.yaml",
        "schedule": {"enabled": False},
        "panel": {"port": port},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def login(url: str) -> requests.Session:
    http = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', http.get(url + "login").text).group(1)
    http.post(url + "login", data={"name": "bench", "password": PASSWORD, "csrf_token": token})
    return http


def watch(url: str, counts: list[int], index: int, stop: threading.Event) -> None:
    """Read the MJPEG stream like a browser; count complete JPEG parts."""
    with login(url).get(url + "live/c1.mjpg", stream=True, timeout=30) as stream:
        for chunk in stream.iter_content(chunk_size=65536):
            counts[index] += chunk.count(b"Content-Type: image/jpeg")
            if stop.is_set():
                return


def measure(config: Path, url: str, viewers: int, warmup_s: float, window_s: float) -> dict:
    duration = warmup_s + window_s + 5
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--duration", str(duration)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    while "panel at" not in (agent.stdout.readline() or "panel at"):
        pass
    counts = [0] * viewers
    stop = threading.Event()
    threads = [
        threading.Thread(target=watch, args=(url, counts, i, stop), daemon=True) for i in range(viewers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warmup_s)
    api = login(url)
    process = psutil.Process(agent.pid)
    cpu_before, frames_before, counts_before = (
        process.cpu_times(),
        api.get(url + "api/live").json(),
        list(counts),
    )
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    cpu_after, frames_after, counts_after = (
        process.cpu_times(),
        api.get(url + "api/live").json(),
        list(counts),
    )
    stop.set()
    agent.communicate(timeout=60)
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    processed = frames_after["agent"]["frames_processed"] - frames_before["agent"]["frames_processed"]
    captured = frames_after["agent"]["frames_captured"] - frames_before["agent"]["frames_captured"]
    delivered = [
        (after - before) / elapsed for before, after in zip(counts_before, counts_after, strict=True)
    ]
    return {
        "viewers": viewers,
        "live_processed_fps": round(processed / elapsed, 2),
        "live_captured_fps": round(captured / elapsed, 2),
        "agent_cpu_pct": round(100 * cpu_s / elapsed, 1),
        "delivered_fps_mean": round(sum(delivered) / viewers, 2) if viewers else None,
        "delivered_fps_min": round(min(delivered), 2) if viewers else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window-s", type=float, default=30.0, help="each measurement")
    parser.add_argument("--warmup-s", type=float, default=8.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = site(Path(tmp), port)
        with contextlib.redirect_stdout(io.StringIO()):
            if beltcam(["demo", "--config", str(config), "--duration", "3"]) != 0:  # the starter model
                raise RuntimeError("beltcam demo failed")
        store = FrameStore.from_config(load_config(config).storage)
        add_user(store, "bench", PASSWORD, "viewer")
        store.close()
        for viewers in VIEWERS:
            rows.append(measure(config, f"http://127.0.0.1:{port}/", viewers, args.warmup_s, args.window_s))
            print(rows[-1], flush=True)
    alone = rows[0]["live_processed_fps"]
    for row in rows:
        row["live_fps_ratio_to_no_viewer"] = round(row["live_processed_fps"] / alone, 3) if alone else None
    results = {"machine": describe_machine(), "panel_live_fps_cap": 8.0, "rows": rows}
    write_results("panel", results)
    write_results("panel_run", run_record(**vars(args)))
    print(
        f"\nthe panel's live view ({describe_machine()}); C1/C2 640x480 at 10 fps, ResNet-18 128 px starter"
    )
    print(
        f"{'viewers':>7} {'delivered fps (mean/min)':>25} {'live fps':>8} {'vs none':>7} {'agent CPU %':>11}"
    )
    for row in rows:
        delivered = f"{row['delivered_fps_mean']}/{row['delivered_fps_min']}" if row["viewers"] else "-"
        print(f"{row['viewers']:>7} {delivered:>25} {row['live_processed_fps']:>8} "
              f"{row['live_fps_ratio_to_no_viewer']!s:>7} {row['agent_cpu_pct']:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
