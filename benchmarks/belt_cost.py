"""What a simulated site spends per C1 frame besides the model, on each simulated belt: rendering the
frame (the simulated camera runs in the agent's process, where a real camera costs nothing), encoding
it as the recorder does (JPEG, the default `storage.image_format`) and the
tracker and planner on label maps of the camera's size (the `truth` rows of benchmarks/endtoend.py)
and of the model's input size (what a live model hands the tracker). Written to explain why the
end-to-end benchmark keeps fewer frames on the hard belt than on the standard one on 2 cores.

    .venv/bin/python -m benchmarks.belt_cost [--frames 100] [--belts standard hard]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from benchmarks.common import describe_machine, run_record, write_results
from edge.actuators.link import bank_of
from edge.config import CameraConfig, LiveConfig, SimulatorConfig
from edge.live.tracker import BeltTracker
from edge.simulator.belts import BELTS, belt_settings
from edge.simulator.calibration_truth import simulator_calibration
from edge.simulator.camera import SimulatedCamera
from edge.sources.image_files import encode_image
from firmware_bridge.planner import EjectionPlanner

FPS = 10
RESOLUTION = (640, 480)  # benchmarks/endtoend.py's cameras
MODEL_INPUT = (128, 96)  # the starter models' input: the size of a live model's label maps


def _path_ms(simulator: SimulatorConfig, c1: CameraConfig, maps: list[np.ndarray]) -> float:
    """Tracker and planner (today's defaults) on `maps`, milliseconds per map."""
    calibration = simulator_calibration(simulator, [c1])
    now = [0]
    planner = EjectionPlanner(bank_of(calibration.actuators), clock=lambda: now[0], spare_legal=True)
    plane = np.array(calibration.camera("c1").belt_plane.pixel_to_belt)
    tracker = BeltTracker(plane, RESOLUTION, simulator.belt_speed_mm_s, LiveConfig())
    started = time.perf_counter()
    for seq, labels in enumerate(maps):
        now[0] = round(seq / FPS * 1e9)
        for report in tracker.update(labels, now[0]):
            planner.plan(report)
    return (time.perf_counter() - started) / len(maps) * 1e3


def one_belt(belt: str, frames: int, speed: float) -> dict:
    simulator = SimulatorConfig(seed=0, belt_speed_mm_s=speed, realtime=False, **belt_settings(belt))
    c1 = CameraConfig(id="c1", kind="simulated", resolution=RESOLUTION, fps=FPS)
    camera = SimulatedCamera(c1, simulator)
    camera.frame_at(0)  # the first frame builds the belt's textures
    started = time.perf_counter()
    rendered = [camera.frame_at(seq) for seq in range(1, frames + 1)]
    render_ms = (time.perf_counter() - started) / frames * 1e3
    started = time.perf_counter()
    encoded = [len(encode_image(frame.image, "jpg")) for frame in rendered]
    encode_ms = (time.perf_counter() - started) / frames * 1e3
    full = [frame.truth.label_map for frame in rendered]
    small = [cv2.resize(labels, MODEL_INPUT, interpolation=cv2.INTER_NEAREST) for labels in full]
    objects = np.mean([len(frame.truth.objects) for frame in rendered])
    return {
        "belt": belt,
        "objects_per_frame": round(float(objects), 2),
        "render_ms": round(render_ms, 2),
        "jpeg_encode_ms": round(encode_ms, 2),
        "jpeg_kb": round(float(np.mean(encoded)) / 1e3, 1),
        "path_camera_size_ms": round(_path_ms(simulator, c1, full), 2),
        "path_model_size_ms": round(_path_ms(simulator, c1, small), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--speed", type=float, default=500.0, help="belt speed, mm/s")
    parser.add_argument("--belts", nargs="+", choices=list(BELTS), default=["standard", "hard"])
    args = parser.parse_args()
    rows = [one_belt(belt, args.frames, args.speed) for belt in args.belts]
    print(f"\nper C1 frame ({describe_machine()}), {args.frames} frames at {args.speed:g} mm/s")
    print(f"{'belt':>9} {'objects':>8} {'render ms':>10} {'jpeg ms':>8} {'jpeg kB':>8} "
          f"{'path 640x480 ms':>16} {'path 128x96 ms':>15}")  # fmt: skip
    for r in rows:
        print(f"{r['belt']:>9} {r['objects_per_frame']:>8} {r['render_ms']:>10} {r['jpeg_encode_ms']:>8} "
              f"{r['jpeg_kb']:>8} "
              f"{r['path_camera_size_ms']:>16} {r['path_model_size_ms']:>15}")  # fmt: skip
    write_results("belt_cost", rows)
    write_results("belt_cost_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
