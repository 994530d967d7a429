"""The dataset manifest: what `edge` hands the trainer instead of database access.

JSON with ordered sequences of frame paths, each sequence from one camera with one label, plus
optional ground-truth masks (evaluation only) and, for belt-motion flow, frame times and the belt's
velocity in image pixels per second.

For the removal-based object check (evaluation without masks, `trainer.object_check`), sequences
also carry their camera's pixel-to-belt homography and `holdout` (never trained on), and the manifest
the belt's geometry: speed, C1-to-C2 distance and the cameras' clock offset. Frame times are then on
one clock for the whole manifest (seconds from any common origin), so C1 and C2 times compare.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainer.errors import ManifestError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Row3 = tuple[float, float, float]


class ManifestFrame(_Strict):
    path: str
    mask: str | None = None  # PNG label map: 0 background, 1 illegal, 2 legal
    time_s: float | None = None  # capture time (one clock per manifest), for flows and the object check


class ManifestSequence(_Strict):
    id: str
    camera: Literal["c1", "c2"]
    label: Literal["before", "after", "unlabeled"]
    frames: list[ManifestFrame] = Field(min_length=1)
    belt_velocity_px_s: tuple[float, float] | None = Field(
        default=None, description="objects' image velocity (x, y) in px/s at the frames' resolution"
    )
    pixel_to_belt: tuple[Row3, Row3, Row3] | None = Field(
        default=None, description="homography from this camera's pixels to its own belt mm (x along travel)"
    )
    holdout: bool = Field(default=False, description="evaluation only: never trained on")


class BeltGeometry(_Strict):
    """Where C2 sees what C1 saw: what the object check needs from the site calibration."""

    speed_mm_s: float = Field(gt=0)
    c1_to_c2_mm: float = Field(gt=0, description="C2's belt origin downstream of C1's")
    c2_clock_offset_ms: float = Field(default=0.0, description="C2's clock minus C1's")
    min_object_mm2: float = Field(
        default=2500.0, gt=0, description="smaller foreground blobs are dirt or belt texture, not objects"
    )


class Manifest(_Strict):
    version: Literal[1] = 1
    root: str = Field(default=".", description="relative frame and mask paths resolve against this")
    sequences: list[ManifestSequence] = Field(min_length=1)
    belt: BeltGeometry | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Manifest:
        ids = [s.id for s in self.sequences]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"sequence ids must be unique, repeated: {duplicates}")
        return self

    def resolve(self, relative: str, base: Path) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else (base / self.root / path).resolve()


def load_manifest(path: Path | str) -> tuple[Manifest, Path]:
    """Parse and validate; returns the manifest and the folder its relative paths start from."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ManifestError(f"{path}: {field}: {reason}") from None
    return manifest, path.resolve().parent


def save_manifest(manifest: Manifest, path: Path) -> None:
    path.write_text(manifest.model_dump_json(indent=2, exclude_none=True) + "\n", encoding="utf-8")
