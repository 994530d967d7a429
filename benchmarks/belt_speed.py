"""How well the live path's measured belt speed (`live.belt_speed: measured`) follows the belt: the
tracker fed the simulator's label maps of C1 (perfect masks, simulated time, 10 fps), its speed at
every frame against the simulated belt's true instantaneous speed (the drive's wobble included),
also with a calibration whose speed is 10 % off (the figure the meter starts from and bounds its
samples by).

    .venv/bin/python -m benchmarks.belt_speed [--seeds 0 1] [--minutes 1] [--speeds 250 500]
        [--resolutions 640x480 128x96]

Prints a table and writes results/belt_speed.json: per row the median and 95th percentile of
|measured - true| / true over the frames after the first 5 s (the meter needs 10 samples), and
the same for the calibrated figure alone.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import describe_machine, run_record, write_results
from edge.config import CameraConfig, LiveConfig, SimulatorConfig
from edge.live.tracker import BeltTracker
from edge.simulator.calibration_truth import simulator_calibration
from edge.simulator.camera import SimulatedCamera

FPS = 10.0
WARM_UP_S = 5.0


def one_run(seed: int, speed: float, resolution: tuple[int, int], seconds: float, off: float) -> dict:
    """Relative errors of the measured and the calibrated speed over one stretch of belt."""
    simulator = SimulatorConfig(seed=seed, belt_speed_mm_s=speed, realtime=False)
    c1 = CameraConfig(id="c1", kind="simulated", resolution=resolution, fps=FPS)
    camera = SimulatedCamera(c1, simulator, epoch_ns=0)
    plane = np.array(simulator_calibration(simulator, [c1]).camera("c1").belt_plane.pixel_to_belt)
    calibrated = speed * off
    tracker = BeltTracker(plane, resolution, calibrated, LiveConfig(belt_speed="measured"))
    measured, assumed = [], []
    for seq in range(round(seconds * FPS)):
        frame_ns = round(seq / FPS * 1e9)
        tracker.update(camera.frame_at(seq).truth.label_map, frame_ns)
        if seq / FPS >= WARM_UP_S:
            true = camera.world.speed_mm_s(seq / FPS)
            measured.append(abs(tracker.speed_mm_s - true) / true)
            assumed.append(abs(calibrated - true) / true)
    return {
        "measured": np.array(measured),
        "calibrated": np.array(assumed),
        "refused": tracker.speed_meter.refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[250.0, 500.0])
    parser.add_argument("--resolutions", nargs="+", default=["640x480", "128x96"])
    args = parser.parse_args()
    rows = []
    for resolution in args.resolutions:
        size = tuple(int(v) for v in resolution.split("x"))
        for speed in args.speeds:
            for off in (1.0, 0.9):
                runs = [one_run(seed, speed, size, args.minutes * 60, off) for seed in args.seeds]
                measured = np.concatenate([run["measured"] for run in runs])
                calibrated = np.concatenate([run["calibrated"] for run in runs])
                rows.append(
                    {
                        "resolution": resolution, "speed_mm_s": speed, "calibrated_over_true": off,
                        "measured_median_error": round(float(np.median(measured)), 4),
                        "measured_p95_error": round(float(np.percentile(measured, 95)), 4),
                        "calibrated_median_error": round(float(np.median(calibrated)), 4),
                        "calibrated_p95_error": round(float(np.percentile(calibrated, 95)), 4),
                        "frames": int(measured.size), "refused_samples": sum(run["refused"] for run in runs),
                    }
                )  # fmt: skip
                print({k: v for k, v in rows[-1].items()}, flush=True)
    budget = f"{args.minutes:g} min x {len(args.seeds)} seeds"
    print(f"\nmeasured belt speed against the simulated belt's true speed ({describe_machine()}), {budget}")
    print(f"{'resolution':>10} {'mm/s':>5} {'calib/true':>10} {'measured med':>12} {'p95':>6} "
          f"{'calibrated med':>14} {'p95':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['resolution']:>10} {r['speed_mm_s']:>5g} {r['calibrated_over_true']:>10g} "
              f"{r['measured_median_error']:>12.2%} {r['measured_p95_error']:>6.2%} "
              f"{r['calibrated_median_error']:>14.2%} {r['calibrated_p95_error']:>6.2%}")  # fmt: skip
    write_results("belt_speed", rows)
    write_results("belt_speed_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
