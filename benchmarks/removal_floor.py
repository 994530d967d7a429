"""What the path after the model loses by itself: perfect masks through the tracker, the planner and
the valves, judged by the simulated belt's ground truth, in simulated time (no model, no real time,
the same numbers on any machine).

Two inputs stand in for a perfect model: `tracked` boxes (the simulator's exact extent of every object
in C1's view, straight to the planner: no tracker at all) and `truth maps` (the simulator's label map of
each C1 frame, 640x480 at 10 fps, through the real `BeltTracker`). Each is run with the planner firing
over whole object extents (`spare_legal` off) and sparing the lanes of legal neighbours (on), and the
truth maps also with and without the tracker splitting patches where an illegal and a legal region
touch (`split_classes`). Removal commands become valve openings at their fire time for their pulse
(the reference device does the same), judged by `edge.simulator.judge` like the agent's.

    .venv/bin/python -m benchmarks.removal_floor [--seeds 0 1] [--minutes 1] [--speeds 250 500]
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import cv2
import numpy as np

from benchmarks.common import describe_machine, run_record, write_results
from edge.actuators.link import bank_of
from edge.config import CameraConfig, LiveConfig, SimulatorConfig
from edge.live.tracker import BeltTracker
from edge.simulator.calibration_truth import simulator_calibration
from edge.simulator.camera import SimulatedCamera
from edge.simulator.judge import judge_openings, perfect_tracking, removal_scores
from firmware_bridge.planner import EjectionPlanner
from firmware_bridge.valve_device import ValveOpening

FPS = 10
RESOLUTION = (640, 480)
DISPATCH_STEPS = 10  # releases per frame period, as the dispatcher's few milliseconds would
WARM_UP_S = 1.0  # objects judged are those not yet in view when the path started
END_MARGIN_S = 0.5  # ... and wholly past the line half a second before the end: their commands were due
KEYS = ("recall", "false_ejections", "illegal_passed", "legal_passed", "spared")


def one_run(seed: int, speed: float, source: str, spare: bool, split: bool, seconds: float) -> dict:
    simulator = SimulatorConfig(seed=seed, belt_speed_mm_s=speed, realtime=False)
    c1 = CameraConfig(id="c1", kind="simulated", resolution=RESOLUTION, fps=FPS)
    camera = SimulatedCamera(c1, simulator, epoch_ns=0)
    calibration = simulator_calibration(simulator, [c1])  # what the simulated site's agent is given
    bank = bank_of(calibration.actuators)
    now = [0]
    planner = EjectionPlanner(bank, clock=lambda: now[0], spare_legal=spare)
    plane = np.array(calibration.camera("c1").belt_plane.pixel_to_belt)
    tracker = BeltTracker(plane, RESOLUTION, speed, LiveConfig(split_classes=split))
    corners = np.array([[[0.0, 0.0]], [[RESOLUTION[0], RESOLUTION[1]]]])
    view_x = cv2.perspectiveTransform(corners, plane)[:, 0, 0]
    openings = []
    for seq in range(round(seconds * FPS)):
        frame_ns = round(seq / FPS * 1e9)
        now[0] = frame_ns
        if source == "tracked boxes":
            reports = perfect_tracking(camera.world, (float(view_x.min()), float(view_x.max())), seq / FPS, 0)
        else:
            frame = camera.frame_at(seq)
            reports = tracker.update(frame.truth.label_map, frame.capture_ns)
        for report in reports:
            planner.plan(report)
        for step in range(DISPATCH_STEPS):
            now[0] = frame_ns + step * round(1e9 / FPS / DISPATCH_STEPS)
            for command in planner.due():
                close_ns = command.fire_ns + round(command.pulse_ms * 1e6)
                openings.extend(
                    ValveOpening(channel, command.fire_ns, close_ns, command.object_id, command.sequence)
                    for channel in command.channels
                )
    judgements = judge_openings(openings, bank, camera.world, 0)
    scores = removal_scores(judgements, camera.world, bank.line_x_mm, WARM_UP_S, seconds - END_MARGIN_S)
    return {**scores, "spared": planner.stats.spared, "lanes_spared": planner.stats.lanes_spared}


CONFIGS = (  # (input, spare_legal, split_classes): split only changes what the tracker does
    ("tracked boxes", False, False),
    ("tracked boxes", True, False),
    ("truth maps", False, False),
    ("truth maps", True, False),
    ("truth maps", False, True),
    ("truth maps", True, True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[250.0, 500.0])
    args = parser.parse_args()
    rows = []
    for (source, spare, split), speed in itertools.product(CONFIGS, args.speeds):
        runs = [one_run(seed, speed, source, spare, split, args.minutes * 60) for seed in args.seeds]
        row = {
            "input": source, "spare_legal": spare, "split_classes": split, "speed_mm_s": speed,
            **{key: round(statistics.mean(r[key] for r in runs), 4) for key in ("recall", "false_ejections")},
            **{key: sum(r[key] for r in runs) for key in ("illegal_passed", "legal_passed", "spared")},
            "per_seed": runs,
        }  # fmt: skip
        rows.append(row)
        print(
            {key: row[key] for key in ("input", "spare_legal", "split_classes", "speed_mm_s", *KEYS)},
            flush=True,
        )
    budget = f"{args.minutes:g} min x {len(args.seeds)} seeds"
    print(f"\nremoval floor with perfect masks ({describe_machine()}), {budget}")
    print(f"{'input':>14} {'spare':>5} {'split':>5} {'mm/s':>5} {'recall':>7} {'false ej':>8} {'spared':>6}")
    for r in rows:
        print(f"{r['input']:>14} {r['spare_legal']!s:>5} {r['split_classes']!s:>5} {r['speed_mm_s']:>5g} "
              f"{r['recall']:>7} {r['false_ejections']:>8} {r['spared']:>6}")  # fmt: skip
    write_results("removal_floor", rows)
    write_results("removal_floor_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
