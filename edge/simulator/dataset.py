"""Simulated footage written straight to a dataset manifest, without the store.

For benchmarks and tests of the trainer: the same manifest `edge` builds from recordings, with
held-out `before` sequences carrying the simulator's ground-truth masks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2

from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera


def write_simulated_manifest(
    folder: Path,
    frames: int = 8,
    size: tuple[int, int] = (128, 96),
    sequences: int = 2,
    masked_before: int = 2,
    seed: int = 0,
    fps: float = 4.0,
    objects_per_m: float = 10.0,
    holdout_s: float = 0.0,
    holdout_masks: bool = False,
    belt: dict[str, Any] | None = None,
) -> Path:
    """`sequences` C1 `before` and C2 `after` sequences, plus `masked_before` C1 sequences with masks
    (for evaluation only: the trainer never trains on sequences with masks). Sequences are taken
    from well separated stretches of belt, so no object appears in two C1 sequences.

    `holdout_s` > 0 adds held-out footage for the removal-based object check: C1 for that long and C2
    for as long as it takes every object C1 saw to pass it, with the installation's geometry (belt
    planes, speed, C1-to-C2 distance) as the site calibration would give it; `holdout_masks` also
    stores ground truth on the held-out C1 frames, to compare the check with. `belt`: simulator
    settings of the belt to render (`edge.simulator.belts`), over these defaults and `objects_per_m`."""
    defaults = {"seed": seed, "objects_per_m": objects_per_m, "c1_to_c2_mm": 800, "realtime": False}
    simulator = SimulatorConfig(**{**defaults, **(belt or {})})
    manifest: dict = {"version": 1, "root": ".", "sequences": []}
    plan = [("c1", "before", False)] * sequences + [("c2", "after", False)] * sequences
    plan += [("c1", "before", True)] * masked_before
    spans = [(index * (frames + 50), frames, False) for index in range(len(plan))]
    if holdout_s > 0:
        start = len(plan) * (frames + 50)
        view_s = simulator.belt_width_mm / size[1] * size[0] / simulator.belt_speed_mm_s  # C1's view, crossed
        travel_s = simulator.c1_to_c2_mm / simulator.belt_speed_mm_s
        plan += [("c1", "before", holdout_masks), ("c2", "after", False)]
        spans += [
            (start, round(holdout_s * fps), True),
            (start + round((travel_s - view_s) * fps), round((holdout_s + 2 * view_s) * fps) + 1, True),
        ]
        manifest["belt"] = {
            "speed_mm_s": simulator.belt_speed_mm_s,
            "c1_to_c2_mm": simulator.c1_to_c2_mm,
            "c2_clock_offset_ms": simulator.c2_clock_offset_ms,
        }
    for index, ((camera_id, label, masked), (first, count, holdout)) in enumerate(
        zip(plan, spans, strict=True)
    ):
        camera = SimulatedCamera(
            CameraConfig(id=camera_id, kind="simulated", resolution=size, fps=fps), simulator
        )
        sequence_id = f"{camera_id}-{index}"
        entries = []
        for k in range(count):
            frame = camera.frame_at(first + k)
            path = folder / sequence_id / f"{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
            entry = {"path": path.relative_to(folder).as_posix(), "time_s": camera.time_of(frame.seq)}
            if masked:
                mask_path = path.with_suffix(".mask.png")
                cv2.imwrite(str(mask_path), frame.truth.label_map)
                entry["mask"] = mask_path.relative_to(folder).as_posix()
            entries.append(entry)
        scale = camera.view.mm_per_px
        manifest["sequences"].append(
            {"id": sequence_id, "camera": camera_id, "label": label, "frames": entries,
             "belt_velocity_px_s": [simulator.belt_speed_mm_s / scale, 0.0], "holdout": holdout,
             "pixel_to_belt": [[scale, 0.0, 0.0], [0.0, scale, 0.0], [0.0, 0.0, 1.0]]}
        )  # fmt: skip
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path
