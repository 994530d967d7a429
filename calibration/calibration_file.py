"""The one calibration file the agent loads: versioned YAML, validated, with its evidence.

Every step (intrinsics, belt plane, speed, offsets, actuators) replaces its own section and records
the hashes of its inputs and its error figures, so months later anyone can tell what the numbers
came from and how good they were. Each save bumps the version; the history lists every step.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calibration.actuators import ActuatorGeometry
from calibration.belt_plane import BeltPlane, BeltPlaneFit
from calibration.belt_speed import BeltSpeed
from calibration.errors import CalibrationError
from calibration.intrinsics import Intrinsics, IntrinsicsReport
from calibration.offsets import CameraOffsets

SCHEMA = "beltcam-calibration/1"
Matrix3 = list[list[float]]
# "simulator": the simulated installation's own calibration, written from its settings (exact, not measured)
Step = Literal["intrinsics", "belt_plane", "belt_speed", "offsets", "actuators", "restore", "simulator"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputFile(_Section):
    name: str
    sha256: str
    camera: str | None = None  # for the steps done once per camera: whose input it was


class IntrinsicsSection(_Section):
    camera_matrix: Matrix3
    dist_coeffs: list[float] = Field(min_length=4, max_length=14)
    image_size: tuple[int, int]
    rms_px: float = Field(ge=0)
    per_image_rms_px: dict[str, float] = {}
    rejected: dict[str, str] = {}
    board: str

    @classmethod
    def from_report(cls, report: IntrinsicsReport, board: str) -> IntrinsicsSection:
        found = report.intrinsics
        return cls(
            camera_matrix=found.camera_matrix.tolist(),
            dist_coeffs=found.dist_coeffs.tolist(),
            image_size=found.image_size,
            rms_px=found.rms_px,
            per_image_rms_px=report.per_image_rms_px,
            rejected=report.rejected,
            board=board,
        )

    def to_intrinsics(self) -> Intrinsics:
        return Intrinsics(
            np.array(self.camera_matrix), np.array(self.dist_coeffs), tuple(self.image_size), self.rms_px
        )


class BeltPlaneSection(_Section):
    pixel_to_belt: Matrix3
    method: Literal["board", "markers", "points", "simulator"]
    fit_rms_mm: float = Field(ge=0)
    holdout_rms_mm: float = Field(ge=0)
    holdout_max_mm: float = Field(ge=0)
    holdout_points: int = Field(ge=0, description="none only for the simulator's exact plane")
    undistorted: bool = Field(description="fitted on undistorted pixels (apply intrinsics first)")

    @model_validator(mode="after")
    def _fits_hold_points_out(self) -> BeltPlaneSection:
        if self.method != "simulator" and self.holdout_points < 1:
            raise ValueError(f"holdout_points: a {self.method} plane is checked on at least 1 held-out point")
        return self

    @classmethod
    def from_fit(cls, fit: BeltPlaneFit, method: str, undistorted: bool) -> BeltPlaneSection:
        return cls(
            pixel_to_belt=fit.plane.pixel_to_belt.tolist(),
            method=method,
            fit_rms_mm=fit.fit_rms_mm,
            holdout_rms_mm=fit.holdout_rms_mm,
            holdout_max_mm=float(fit.holdout_errors_mm.max()),
            holdout_points=len(fit.holdout_errors_mm),
            undistorted=undistorted,
        )

    def to_plane(self) -> BeltPlane:
        return BeltPlane(np.array(self.pixel_to_belt))


class CameraSection(_Section):
    intrinsics: IntrinsicsSection | None = None
    belt_plane: BeltPlaneSection | None = None


class BeltSection(_Section):
    speed_source: Literal["clip", "encoder", "simulator"] = "clip"
    speed_mm_s: float | None = Field(default=None, gt=0)
    speed_median_mm_s: float | None = None
    speed_spread_mm_s: float | None = Field(default=None, ge=0)
    cross_speed_mm_s: float | None = None
    measured_on: str | None = Field(default=None, description="camera whose clip gave the speed")
    frame_pairs: int | None = None
    bridged_gaps: int | None = Field(default=None, description="frame pairs across lost frames, not measured")
    encoder_pulses_per_mm: float | None = Field(default=None, gt=0)

    @classmethod
    def from_speed(cls, speed: BeltSpeed, camera: str, encoder_pulses_per_mm: float | None) -> BeltSection:
        return cls(
            speed_source="clip",
            speed_mm_s=speed.mean_mm_s,
            speed_median_mm_s=speed.median_mm_s,
            speed_spread_mm_s=speed.spread_mm_s,
            cross_speed_mm_s=speed.cross_mm_s,
            measured_on=camera,
            frame_pairs=speed.pairs,
            bridged_gaps=speed.bridged_gaps,
            encoder_pulses_per_mm=encoder_pulses_per_mm,
        )


class OffsetsSection(_Section):
    c1_to_c2_mm: float
    c2_clock_offset_ms: float
    clock_source: Literal["speed wobble", "measured distance", "simulator"]
    speed_correlation: float
    object_correlation: float

    @classmethod
    def from_estimate(cls, offsets: CameraOffsets) -> OffsetsSection:
        return cls(
            c1_to_c2_mm=offsets.c1_to_c2_mm,
            c2_clock_offset_ms=offsets.c2_clock_offset_ms,
            clock_source=offsets.clock_source,
            speed_correlation=offsets.speed_correlation,
            object_correlation=offsets.object_correlation,
        )


class HistoryEntry(_Section):
    version: int
    step: Step
    saved_utc: datetime
    camera: Literal["c1", "c2"] | None = None  # the camera of a per-camera step (doctor: mounted since?)


class CalibrationFile(_Section):
    schema_id: Literal["beltcam-calibration/1"] = Field(default=SCHEMA, alias="schema")
    version: int = Field(default=0, ge=0)
    site: str = ""
    cameras: dict[Literal["c1", "c2"], CameraSection] = {}
    belt: BeltSection = BeltSection()
    offsets: OffsetsSection | None = None
    actuators: ActuatorGeometry | None = None
    inputs: dict[Step, list[InputFile]] = {}
    history: list[HistoryEntry] = []

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def camera(self, camera: str) -> CameraSection:
        return self.cameras.get(camera) or CameraSection()  # type: ignore[arg-type]


def hash_file(path: Path) -> InputFile:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return InputFile(name=str(path), sha256=digest.hexdigest())


def _field_path(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def load_calibration(path: Path) -> CalibrationFile:
    """Read and validate; a missing file is an empty calibration (version 0), a bad one an error."""
    if not path.exists():
        return CalibrationFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CalibrationError(f"{path}: cannot read calibration file: {reason}") from error
    if not isinstance(raw, dict):
        raise CalibrationError(f"{path}: a calibration file is a YAML mapping")
    try:
        return CalibrationFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        raise CalibrationError(f"{path}: {_field_path(first)}: {first['msg']}") from error


def save_calibration(
    calibration: CalibrationFile, path: Path, step: Step, camera: str | None = None
) -> CalibrationFile:
    """Write the next version atomically (temp file, fsync, rename) and return what was written."""
    version = calibration.version + 1
    entry = HistoryEntry(version=version, step=step, saved_utc=datetime.now(UTC), camera=camera)
    saved = calibration.model_copy(update={"version": version, "history": [*calibration.history, entry]})
    text = yaml.safe_dump(saved.model_dump(mode="json", by_alias=True), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            author = "the simulated belt (its own settings)" if step == "simulator" else "`beltcam calibrate`"
            stream.write(f"# beltcam calibration, version {saved.version}: written by {author}\n")
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return saved
