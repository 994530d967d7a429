"""Screenshots of every panel page, taken from a running demo, for docs/screenshots/ and the README.

Runs `beltcam demo` on a copy of configs/simulated.yaml in a temporary folder (its own data: the
starter model is trained there first, a minute or two), adds a user, lets the belt run so that
recordings, commands and models exist, then opens every page of the menu in Debian's headless
Chromium and saves `docs/screenshots/<page>.png`.

    .venv/bin/python scripts/panel_screenshots.py [--run-s 60]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_site(folder: Path, port: int) -> Path:
    config = yaml.safe_load((ROOT / "configs" / "simulated.yaml").read_text(encoding="utf-8"))
    config["storage"]["data_dir"] = "data"
    config["calibration_file"] = "data/calibration.yaml"
    config["model"] = {"backbone": "resnet18", "image_size": 128, "pretrained_weights": "random"}
    config["recorder"]["segment_s"] = 20  # several recordings within a short run
    config["panel"] = {"port": port}
    path = folder / "beltcam.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def beltcam(*args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "edge.cli", *args], input=stdin, text=True, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=float, default=60.0, help="belt time before the screenshots")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = demo_site(Path(tmp), port)
        password = secrets.token_urlsafe(12)
        user = ("users", "add", "technician", "--role", "technician", "--password-stdin")
        beltcam(*user, "--config", str(config), stdin=password + "\n")
        run = ("demo", "--config", str(config), "--duration", str(args.run_s * 10))  # ended below
        demo = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *run],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for line in demo.stdout:
                print(line, end="", flush=True)
                if "panel at" in line:
                    break
            time.sleep(args.run_s)
            shoot(f"http://127.0.0.1:{port}/", password)
        finally:
            demo.terminate()
            demo.communicate(timeout=60)


def shoot(url: str, password: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "login")
        page.screenshot(path=OUT / "login.png")
        page.fill("input[name=name]", "technician")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url("**/live")
        links = page.eval_on_selector_all("header nav a", "links => links.map(a => a.getAttribute('href'))")
        for link in links:
            page.goto(url.rstrip("/") + link, wait_until="domcontentloaded")
            page.wait_for_timeout(3000)  # live pictures and refreshed figures
            name = link.strip("/").replace("/", "-") or "home"
            page.screenshot(path=OUT / f"{name}.png", full_page=True)
            print(f"saved {OUT / name}.png")
        browser.close()


if __name__ == "__main__":
    main()
