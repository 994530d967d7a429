"""What the path after the model loses by itself: perfect masks through the tracker, the planner and
the valves, judged by the simulated belt's ground truth, in simulated time (no model, no real time,
the same numbers on any machine).

Two inputs stand in for a perfect model: `tracked` boxes (the simulator's exact extent of every object
in C1's view, straight to the planner: no tracker at all) and `truth maps` (the simulator's label map of
each C1 frame, 640x480 at 10 fps, through the real `BeltTracker`). Each is run with the planner firing
over whole object extents (`spare_legal` off) and sparing the lanes of legal neighbours (on), and the
truth maps also with and without the tracker splitting patches where an illegal and a legal region
touch (`split_classes`), and with the tracker reporting each object's outline (`outline_band_mm`: the
planner fires and spares lanes by it, keeping `spare_clearance_mm` from legal objects), timing by the
calibrated belt speed or the one the tracks show (`belt_speed`), also with a calibration whose speed is
10 % below the belt's (`calibrated_over_true` 0.9: the plant sped the line up). Removal
commands become valve openings at their fire time for their pulse (the reference device does the
same), judged by `edge.simulator.judge` like the agent's.

    .venv/bin/python -m benchmarks.removal_floor [--seeds 0 1] [--minutes 1] [--speeds 250 500]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict, dataclass, field

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


@dataclass(frozen=True)
class Path:
    """One way through the path after the model: its input and switches."""

    input: str  # "tracked boxes" | "truth maps"
    spare_legal: bool
    split_classes: bool = False
    outline_band_mm: float = 0.0
    spare_clearance_mm: float = 0.0
    belt_speed: str = "calibrated"  # live.belt_speed: the calibrated figure, or measured from the tracks
    calibrated_over_true: float = 1.0  # the calibration's belt speed over the simulated belt's


@dataclass
class _Run:
    path: Path
    planner: EjectionPlanner
    tracker: BeltTracker
    openings: list[ValveOpening] = field(default_factory=list)


def one_run(seed: int, speed: float, paths: tuple[Path, ...], seconds: float) -> list[dict]:
    """Every path on the same stretch of belt, each frame rendered once."""
    simulator = SimulatorConfig(seed=seed, belt_speed_mm_s=speed, realtime=False)
    c1 = CameraConfig(id="c1", kind="simulated", resolution=RESOLUTION, fps=FPS)
    camera = SimulatedCamera(c1, simulator, epoch_ns=0)
    calibration = simulator_calibration(simulator, [c1])  # what the simulated site's agent is given
    bank = bank_of(calibration.actuators)
    now = [0]
    plane = np.array(calibration.camera("c1").belt_plane.pixel_to_belt)
    runs = [
        _Run(
            path,
            EjectionPlanner(
                bank,
                clock=lambda: now[0],
                spare_legal=path.spare_legal,
                spare_clearance_mm=path.spare_clearance_mm,
            ),
            BeltTracker(
                plane,
                RESOLUTION,
                speed * path.calibrated_over_true,
                LiveConfig(
                    split_classes=path.split_classes,
                    outline_band_mm=path.outline_band_mm,
                    belt_speed=path.belt_speed,
                ),
            ),
        )
        for path in paths
    ]
    corners = np.array([[[0.0, 0.0]], [[RESOLUTION[0], RESOLUTION[1]]]])
    view_x = cv2.perspectiveTransform(corners, plane)[:, 0, 0]
    for seq in range(round(seconds * FPS)):
        frame_ns = round(seq / FPS * 1e9)
        now[0] = frame_ns
        label_map = (
            camera.frame_at(seq).truth.label_map if any(r.path.input == "truth maps" for r in runs) else None
        )
        for run in runs:
            if run.path.input == "tracked boxes":
                reports = perfect_tracking(
                    camera.world, (float(view_x.min()), float(view_x.max())), seq / FPS, 0
                )
            else:
                reports = run.tracker.update(label_map, frame_ns)
            for report in reports:
                run.planner.plan(report)
        for step in range(DISPATCH_STEPS):
            now[0] = frame_ns + step * round(1e9 / FPS / DISPATCH_STEPS)
            for run in runs:
                for command in run.planner.due():
                    close_ns = command.fire_ns + round(command.pulse_ms * 1e6)
                    run.openings.extend(
                        ValveOpening(channel, command.fire_ns, close_ns, command.object_id, command.sequence)
                        for channel in command.channels
                    )
    results = []
    for run in runs:
        judgements = judge_openings(run.openings, bank, camera.world, 0)
        scores = removal_scores(judgements, camera.world, bank.line_x_mm, WARM_UP_S, seconds - END_MARGIN_S)
        stats = run.planner.stats
        results.append({**scores, "spared": stats.spared, "lanes_spared": stats.lanes_spared})
    return results


PATHS = (
    Path("tracked boxes", spare_legal=False),
    Path("tracked boxes", spare_legal=True),
    Path("truth maps", spare_legal=False),
    Path("truth maps", spare_legal=True),
    Path("truth maps", spare_legal=False, split_classes=True),
    Path("truth maps", spare_legal=True, split_classes=True),  # the defaults before outlines
    Path("truth maps", spare_legal=False, split_classes=True, outline_band_mm=5.0),
    *(
        Path(
            "truth maps",
            spare_legal=True,
            split_classes=True,
            outline_band_mm=5.0,
            spare_clearance_mm=clearance,
        )
        for clearance in (0.0, 5.0, 10.0)
    ),
    *(
        Path(
            "truth maps", True, True, 5.0, 5.0, belt_speed, calibrated_over_true
        )  # measured, 1.0: the defaults
        for calibrated_over_true in (1.0, 0.9)
        for belt_speed in ("measured", "calibrated")
        if (belt_speed, calibrated_over_true) != ("calibrated", 1.0)  # that row is above
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[250.0, 500.0])
    args = parser.parse_args()
    rows = []
    for speed in args.speeds:
        per_seed = [one_run(seed, speed, PATHS, args.minutes * 60) for seed in args.seeds]
        for path, runs in zip(PATHS, zip(*per_seed, strict=True), strict=True):
            means = {
                key: round(statistics.mean(r[key] for r in runs), 4) for key in ("recall", "false_ejections")
            }
            totals = {key: sum(r[key] for r in runs) for key in ("illegal_passed", "legal_passed", "spared")}
            rows.append({**asdict(path), "speed_mm_s": speed, **means, **totals, "per_seed": list(runs)})
            print({key: rows[-1][key] for key in (*asdict(path), "speed_mm_s", *KEYS)}, flush=True)
    budget = f"{args.minutes:g} min x {len(args.seeds)} seeds"
    print(f"\nremoval floor with perfect masks ({describe_machine()}), {budget}")
    columns = ("input", "spare_legal", "split_classes", "outline_band_mm", "spare_clearance_mm", "belt_speed",
               "calibrated_over_true", "speed_mm_s", "recall", "false_ejections", "spared")  # fmt: skip
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[column]) for column in columns))
    write_results("removal_floor", rows)
    write_results("removal_floor_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
