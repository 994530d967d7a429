"""`beltcam run` and `beltcam demo`: the agent. Record C1 and C2, segment C1 live, track the
objects on the belt and fire the valves; on the simulated belt, judge every opening by ground truth.

`demo` is `run` on the simulated belt (configs/simulated.yaml), and trains a starter model first
when the registry has no live model. `--report FILE` writes the scoreboard as JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from calibration import CalibrationError, load_calibration
from edge.actuators.link import open_transport
from edge.capture.cameras import build_sources
from edge.cli.common import (
    add_config,
    calibrate_simulated_site,
    interruptible,
    load_training_stack,
    open_store,
    positive,
)
from edge.cli.restart import AgentRestart
from edge.cli.safe_mode import add_safe_mode_option
from edge.cli.systemd_notify import tell_systemd, watchdog_period_s
from edge.config import SiteConfig
from edge.live.site_check import LiveUnavailable, live_geometry_problem
from edge.nightly.starter import starter_folder, train_starter_model
from edge.store.frame_store import FrameStore
from edge.store.lock import DataDirLock
from edge.store.reconcile import reconcile_at_start
from edge.store.registry import live_model, reject
from edge.store.users import add_user, users

if TYPE_CHECKING:
    from edge.agent import AgentSummary
    from edge.simulator.truth import SimulatedTruth

DEMO_CONFIG = Path("configs/simulated.yaml")
DEMO_USER = "demo"
SHOWN = ("recall", "false_ejections", "late", "latency_p50_ms", "latency_p99_ms", "frames_processed",
         "frames_captured", "model")  # fmt: skip


DESCRIPTIONS = {
    "demo": "The agent on the simulated belt (configs/simulated.yaml by default). On a site with no "
    "usable live model it first trains a small starter model on rendered frames (about two minutes "
    "on a quiet 2-core machine) and makes it live; then it runs like `beltcam run`.",
    "run": "The agent: record C1 and C2, segment C1 live with the registry's live model, track the "
    "objects on the belt and fire the valves. Needs the site's calibration (C1's belt plane, the belt "
    "speed, the actuators). Ctrl-C or SIGTERM stops it cleanly and closes every valve.",
}


def report_path(text: str) -> Path:
    """`--report`: refused where it is typed if it cannot be written, not after the run."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path.parent} is a file, not a folder")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist")
    return path


def add_parsers(commands: argparse._SubParsersAction) -> None:
    for name, default, text in (
        ("demo", DEMO_CONFIG, "the agent on the simulated belt (trains a starter model first if needed)"),
        ("run", None, "the agent: record, segment C1 live, track objects, fire the valves"),
    ):
        parser = commands.add_parser(name, help=text, description=DESCRIPTIONS[name])
        add_config(parser, default) if default else add_config(parser)
        parser.add_argument(
            "--duration", type=positive, help="stop after this many seconds (default: Ctrl-C)"
        )
        parser.add_argument("--report", type=report_path, help="write the scoreboard to this JSON file")
        add_safe_mode_option(parser)


def _simulated(config: SiteConfig) -> bool:
    return all(camera.kind == "simulated" for camera in config.cameras)


def run(config: SiteConfig, args: argparse.Namespace) -> int:
    path = config.calibration_file
    if path is None:
        raise CalibrationError(
            "calibration_file is not set in the site file: the live path needs C1's belt plane, the belt "
            "speed and the actuators (`beltcam record` records without them)"
        )
    if not path.exists() and not _simulated(config):
        raise CalibrationError(
            f"{path}: no such calibration file: calibrate the site first (docs/calibration.md)"
        )
    restart = AgentRestart()  # the panel's Settings page may ask for it after a save
    with DataDirLock(config.storage.data_dir, f"beltcam {args.command}"):
        store = open_store(config)
        try:
            code = _run(config, store, args, restart)
        finally:
            store.close()
    restart.exec_if_requested()  # everything is closed and unlocked: the same command, the saved file
    return code


def _starter_needed(store: FrameStore) -> str | None:
    """Why the demo must train a starter model (None when a usable live model is there). A live
    model the live path would refuse (a corrupt or vanished file) is rejected in the registry first,
    with its reason: the demo would otherwise record for ever with no model."""
    found = live_model(store)
    if found is None:
        return "no live model yet"
    model_id, path = found
    from edge.live.segmenter import ModelRefused, open_session  # ONNX Runtime: only for the demo's check

    try:
        open_session(path, ["cpu"])
    except ModelRefused as refused:
        reject(store, model_id, f"refused by `beltcam demo`: {refused}")
        return f"the live model cannot be used ({refused}): model {model_id} is rejected"
    return None


def _run(
    config: SiteConfig, store: FrameStore, args: argparse.Namespace, restart: AgentRestart | None = None
) -> int:
    for action in reconcile_at_start(store):
        print(f"start-up check: {action}")
    if _simulated(config):
        calibrate_simulated_site(config, store)
    calibration = load_calibration(config.calibration_file)
    problem = live_geometry_problem(calibration)
    if problem is not None:
        raise LiveUnavailable(f"{config.calibration_file}: {problem}")
    why = _starter_needed(store) if args.command == "demo" and _simulated(config) else None
    if why is not None:
        folder = starter_folder(store, config.storage.data_dir)
        load_training_stack()
        doing = "resuming" if (folder / "run" / "checkpoint.pt").is_file() else "training"
        print(
            f"{why}: {doing} a starter model on simulated frames in {folder} (about two minutes on "
            "a quiet 2-core machine; longer while other work runs)"
        )
        try:
            with interruptible():
                path = train_starter_model(config, store, folder, progress=True)
        except KeyboardInterrupt:
            print("stopped while training the starter model: the next `beltcam demo` resumes it")
            return 0
        print(f"starter model live: {path}")
    elif live_model(store) is None:
        print("no live model in the registry yet: recording only until one is promoted")
    from edge.agent import Agent  # the inference stack (torch, ONNX Runtime): only when the agent runs

    sources = build_sources(config)
    with open_transport(config) as link:
        config_path = args.config if args.config is not None else args.default_config
        agent = Agent(config, store, sources, link, calibration, config_path, restart=restart,
                      notify=tell_systemd, watchdog_s=watchdog_period_s())  # fmt: skip
        if restart is not None:
            restart.bind(agent.stop)
        stopped_by: list[str] = []

        def stop(signum: int, _frame) -> None:
            stopped_by.append("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
            agent.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        print(
            f"recording into {config.storage.data_dir}; every removal command in its removal_commands table"
        )
        if agent.panel is not None:
            _say_panel(agent.panel.url, store, demo=args.command == "demo" and _simulated(config))
        summary = agent.run(args.duration, progress=sys.stderr.isatty() or args.duration is not None)
    if stopped_by:
        print(f"stopped by {stopped_by[0]}: recording saved, every valve closed")
    report = {**summary.report, **_judged(agent.truth, summary)}
    _say(report, summary)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"scoreboard written to {args.report}")
    failures = [f"camera {camera} never delivered a frame: {why}"
                for camera, why in summary.recording.unavailable.items()]  # fmt: skip
    if report["model"] is None and report["models_refused"]:  # recording only, and not by choice
        failures.append(f"no model was live, the valves never fired: {report['models_refused'][-1]}")
    for failure in failures:
        print(f"beltcam: error: {failure}", file=sys.stderr)
    return 2 if failures else 0


def _say_panel(url: str, store: FrameStore, demo: bool) -> None:
    """Where the panel is and how to log in. The simulated demo makes its own technician the first
    time, with a random password shown once (only its hash is stored): a fresh clone can look at once."""
    if users(store):
        print(f"panel at {url}")
    elif demo:
        password = secrets.token_urlsafe(12)
        add_user(store, DEMO_USER, password, "technician")
        print(f"panel at {url}: log in as {DEMO_USER} / {password} (shown once; see `beltcam users`)")
    else:
        print(f"panel at {url} (no users yet: `beltcam users add NAME --role technician`)")


def _judged(truth: SimulatedTruth | None, summary: AgentSummary) -> dict:
    """Recall and false ejections by ground truth: only the simulated belt with its simulated valves
    can say which objects the air hit."""
    if truth is None or summary.first_frame_ns is None:
        return {"recall": None, "false_ejections": None}
    return truth.scores(summary.first_frame_ns, summary.ended_ns)


def _say(report: dict, summary: AgentSummary) -> None:
    recording = summary.recording
    print(
        f"recorded {recording.seconds:.1f} s: "
        + ", ".join(f"{c}: {n} frames" for c, n in sorted(recording.written.items()))
    )
    shown = [f"{key} {'-' if report.get(key) is None else report[key]}" for key in SHOWN]
    unmeasured = any(report.get(key) is None for key in SHOWN)
    print("scoreboard: " + ", ".join(shown) + (" (-: nothing to measure it on)" if unmeasured else ""))
