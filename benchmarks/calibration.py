"""Every calibration estimate against the simulated belt's ground truth: 5 seeds x 3 belt speeds.

Per seed and speed, from frames alone:
  scale      mm per pixel from a ChArUco board lying on the belt (C1), relative error
  speed      mean belt speed from a 10 s clip of C1, relative error against the true mean
  distance   C1-to-C2 distance from simultaneous C1 and C2 clips covering the distance plus 6 m of
             belt, error in mm (a refused estimate is counted as such)
  clock      C2-minus-C1 clock offset from the same clips, error in ms
and, per seed, the focal length from 12 rendered views of a chessboard by a known lens (the
simulator has no lens, so this one is checked against the rendering camera).
Distances are 2000 + 311 * seed mm: not multiples of 500 mm, where the simulated belts' splices
would line up and flatter the match.

    .venv/bin/python -m benchmarks.calibration [--seeds 0 1 2 3 4] [--speeds 150 250 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.common import describe_machine, run_record, write_results
from calibration import (
    Board,
    CalibrationError,
    belt_speed,
    calibrate_intrinsics,
    estimate_camera_offsets,
    fit_belt_plane_from_board,
    measure_belt_motion,
)
from calibration.synthetic import board_poses, place_board_on_belt, render_board_view
from edge.simulator.calibration_truth import local_plane, render_clip, simulated_pair, true_mean_speed

BELT_BOARD = Board.parse("charuco:7x5:50:38:DICT_4X4_50")
LENS_BOARD = Board.parse("chessboard:8x6:25")
TRUE_MATRIX = np.array([[520.0, 0.0, 322.0], [0.0, 520.0, 238.0], [0.0, 0.0, 1.0]])
TRUE_DISTORTION = np.array([-0.28, 0.09, 0.0008, -0.0006, 0.0])
CLOCK_OFFSETS_MS = (0.0, 37.0, -80.0, 150.0, 300.0)
BELT_BEYOND_MM = 6000.0  # offsets clips cover the C1-to-C2 distance plus this much belt (docs/calibration.md)


def belt_errors(seed: int, speed: float, resolution: tuple[int, int], fps: float) -> dict[str, float]:
    c1, c2 = simulated_pair(
        resolution, fps, seed=seed, belt_speed_mm_s=speed, c1_to_c2_mm=2000.0 + 311.0 * seed,
        c2_clock_offset_ms=CLOCK_OFFSETS_MS[seed % len(CLOCK_OFFSETS_MS)],
    )  # fmt: skip
    truth = c1.view.pixel_to_belt_homography()
    photo = place_board_on_belt(c1.frame_at(0).image, truth, BELT_BOARD, (120.0, 90.0))
    plane = fit_belt_plane_from_board(photo[..., 1], BELT_BOARD, (120.0, 90.0))
    centre = (resolution[0] / 2, resolution[1] / 2)
    scale_error = plane.plane.mm_per_px(centre) / c1.view.mm_per_px - 1

    speed_frames = int(10 * fps)
    frames, times = render_clip(c1, speed_frames)
    measured = belt_speed(measure_belt_motion(frames, times, local_plane(c1)))
    true_speed = true_mean_speed(c1, speed_frames)

    distance = c1.simulator.c1_to_c2_mm
    clip_frames = int((distance + BELT_BEYOND_MM) / speed * fps)
    frames1, times1 = render_clip(c1, clip_frames)
    frames2, times2 = render_clip(c2, clip_frames)
    try:
        offsets = estimate_camera_offsets(
            frames1, measure_belt_motion(frames1, times1, local_plane(c1)), local_plane(c1),
            frames2, measure_belt_motion(frames2, times2, local_plane(c2)), local_plane(c2),
        )  # fmt: skip
    except CalibrationError as refusal:  # a refusal is a result too: counted, not hidden
        print(f"  offsets refused: {refusal}")
        offsets = None
    return {
        "scale_error_pct": 100 * scale_error,
        "plane_holdout_rms_mm": plane.holdout_rms_mm,
        "speed_error_pct": 100 * (measured.mean_mm_s / true_speed - 1),
        "distance_error_mm": offsets.c1_to_c2_mm - distance if offsets else float("nan"),
        "clock_error_ms": offsets.c2_clock_offset_ms - c1.simulator.c2_clock_offset_ms
        if offsets
        else float("nan"),
        "clip_s": clip_frames / fps,
    }


def focal_error_pct(seed: int) -> float:
    images = [
        (f"view{index}", render_board_view(LENS_BOARD, TRUE_MATRIX, TRUE_DISTORTION, rvec, tvec, (640, 480)))
        for index, (rvec, tvec) in enumerate(board_poses(TRUE_MATRIX, LENS_BOARD, 12, seed))
    ]
    fx, fy = calibrate_intrinsics(images, LENS_BOARD).intrinsics.focal_px
    return 100 * ((fx + fy) / 2 / 520.0 - 1)


def _summary(values: list[float]) -> dict[str, float]:
    absolute = [abs(v) for v in values if v == v]  # NaN: the estimate was refused
    return {
        "mean_abs": round(statistics.mean(absolute), 3) if absolute else None,
        "max_abs": round(max(absolute), 3) if absolute else None,
        "refused": len(values) - len(absolute),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--speeds", type=float, nargs="+", default=[150.0, 250.0, 500.0])
    parser.add_argument("--resolution", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    rows = []
    for speed in args.speeds:
        for seed in args.seeds:
            started = time.monotonic()
            errors = belt_errors(seed, speed, tuple(args.resolution), args.fps)
            rows.append({"seed": seed, "speed_mm_s": speed, **{k: round(v, 3) for k, v in errors.items()}})
            print(
                f"speed {speed:5.0f} seed {seed}: scale {errors['scale_error_pct']:+.3f} %, speed "
                f"{errors['speed_error_pct']:+.3f} %, distance {errors['distance_error_mm']:+.1f} mm, clock "
                f"{errors['clock_error_ms']:+.1f} ms ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    focal = {seed: round(focal_error_pct(seed), 3) for seed in args.seeds}
    table = {}
    for speed in args.speeds:
        subset = [r for r in rows if r["speed_mm_s"] == speed]
        table[str(speed)] = {
            key: _summary([r[key] for r in subset])
            for key in ("scale_error_pct", "speed_error_pct", "distance_error_mm", "clock_error_ms")
        }
    print(f"\ncalibration errors on the simulated belt ({describe_machine()}), seeds {args.seeds}")
    header = ["scale %", "speed %", "distance mm", "clock ms"]
    print(f"{'speed mm/s':>10} " + " ".join(f"{h:>14}" for h in header) + "   (mean|max abs)")
    for speed, summary in table.items():
        cells = [
            f"{s['mean_abs']:.3f}|{s['max_abs']:.3f}" + (f" ({s['refused']} refused)" if s["refused"] else "")
            if s["mean_abs"] is not None
            else "all refused"
            for s in summary.values()
        ]
        print(f"{float(speed):>10.0f} " + " ".join(f"{c:>14}" for c in cells))
    print(f"focal length error % per seed: {focal}")
    write_results("calibration", {"rows": rows, "summary": table, "focal_error_pct": focal})
    write_results("calibration_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
