"""The technician's calibration steps: run `calibration` on images and clips, save the file.

When a camera has intrinsics, everything it sees is undistorted before it is measured; every saved
version is also kept in the store's `calibrations` table.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from calibration import (
    ActuatorGeometry,
    BeltPlane,
    BeltPlaneFit,
    Board,
    CalibrationError,
    CalibrationFile,
    Undistorter,
    belt_speed,
    calibrate_intrinsics,
    estimate_camera_offsets,
    fit_belt_plane,
    fit_belt_plane_from_board,
    fit_belt_plane_from_markers,
    load_calibration,
    measure_belt_motion,
)
from calibration.calibration_file import (
    BeltPlaneSection,
    BeltSection,
    CameraSection,
    InputFile,
    IntrinsicsSection,
    OffsetsSection,
    Step,
    hash_file,
)
from edge.calibrate.clips import Clip
from edge.sources.image_files import ImageFileError, image_files, read_image
from edge.store.calibrations import save_version, stored_content, stored_versions
from edge.store.frame_store import FrameStore


class CalibrationSession:
    """One site calibration file, with the store that keeps every saved version."""

    def __init__(self, path: Path, store: FrameStore, cache_dir: Path, site: str = "") -> None:
        self.path = path
        self.store = store
        self.cache_dir = cache_dir
        self.site = site  # the site file's `site_name`, written into every version
        self.current: CalibrationFile = load_calibration(path)

    def _camera(self, camera: str) -> CameraSection:
        return self.current.camera(camera)

    def stored_versions(self) -> list[int]:
        """The versions of this calibration file the store keeps, oldest first."""
        return stored_versions(self.store, self.path)

    def _save(
        self, step: Step, update: dict, inputs: list[InputFile], camera: str | None = None
    ) -> CalibrationFile:
        """Save the next version; a per-camera step replaces only that camera's inputs."""
        if camera is not None:
            kept = [i for i in self.current.inputs.get(step, []) if i.camera not in (camera, None)]
            inputs = kept + [i.model_copy(update={"camera": camera}) for i in inputs]
        site = {"site": self.site} if self.site else {}
        updated = self.current.model_copy(
            update={**update, **site, "inputs": {**self.current.inputs, step: inputs}}
        )
        CalibrationFile.model_validate(updated.model_dump(by_alias=True))  # every section still valid
        self.current = save_version(self.store, self.path, updated, step, camera)
        return self.current

    def restore(self, version: int | None = None) -> CalibrationFile:
        """Bring back a stored version (the newest when None) as the next version of the file."""
        stored = self.stored_versions()
        if not stored:
            raise CalibrationError(f"{self.path}: the store keeps no version of this calibration file")
        wanted = stored[-1] if version is None else version
        if wanted not in stored:
            raise CalibrationError(
                f"{self.path}: no stored version {wanted} (the store keeps {_ranges(stored)})"
            )
        self.current = CalibrationFile.model_validate(stored_content(self.store, self.path, wanted))
        return self._save("restore", {}, [])

    def _with_camera(self, camera: str, **section: object) -> dict:
        cameras = dict(self.current.cameras)
        cameras[camera] = self._camera(camera).model_copy(update=section)
        return {"cameras": cameras}

    def undistorter(self, camera: str) -> Undistorter | None:
        intrinsics = self._camera(camera).intrinsics
        return Undistorter(intrinsics.to_intrinsics(), self.cache_dir) if intrinsics else None

    def _prepared(self, camera: str, images: list[np.ndarray]) -> list[np.ndarray]:
        undistort = self.undistorter(camera)
        return [undistort(image) for image in images] if undistort else images

    def plane(self, camera: str) -> BeltPlane:
        section = self._camera(camera).belt_plane
        if section is None:
            raise CalibrationError(
                f"{camera} has no belt plane yet: run `beltcam calibrate plane --camera {camera}`"
            )
        return section.to_plane()

    # --- steps ----------------------------------------------------------------------------------
    def intrinsics(self, camera: str, folder: Path, board: Board, max_rms_px: float) -> IntrinsicsSection:
        if not folder.is_dir():
            raise CalibrationError(f"{folder}: not a folder of board images")
        files = image_files(folder)
        images = []
        for path in files:
            try:
                images.append((path.name, read_image(path)))
            except ImageFileError as error:
                raise CalibrationError(str(error)) from None
        report = calibrate_intrinsics(images, board, max_rms_px)
        section = IntrinsicsSection.from_report(report, board.describe())
        files_used = [hash_file(p) for p in files]
        self._save("intrinsics", self._with_camera(camera, intrinsics=section), files_used, camera)
        return section

    def _photo(self, camera: str, image_path: Path) -> np.ndarray:
        """The photo as undistorted grayscale."""
        try:
            image = read_image(image_path)
        except ImageFileError as error:
            raise CalibrationError(str(error)) from None
        (prepared,) = self._prepared(camera, [image])
        return cv2.cvtColor(prepared, cv2.COLOR_RGB2GRAY)

    def plane_from_board(
        self, camera: str, image_path: Path, board: Board, origin_mm: tuple[float, float]
    ) -> BeltPlaneSection:
        fit = fit_belt_plane_from_board(self._photo(camera, image_path), board, origin_mm)
        return self._save_plane(camera, fit, "board", [hash_file(image_path)])

    def plane_from_markers(
        self, camera: str, image_path: Path, dictionary: str, markers_csv: Path
    ) -> BeltPlaneSection:
        positions = read_marker_csv(markers_csv)
        fit = fit_belt_plane_from_markers(self._photo(camera, image_path), dictionary, positions)
        return self._save_plane(camera, fit, "markers", [hash_file(image_path), hash_file(markers_csv)])

    def plane_from_points(self, camera: str, points_csv: Path) -> BeltPlaneSection:
        pixels, belt, holdout = read_points_csv(points_csv)
        undistort = self.undistorter(camera)
        if undistort is not None:
            pixels = undistort.points(pixels)
        fit = fit_belt_plane(pixels, belt, holdout if holdout.any() else None)
        return self._save_plane(camera, fit, "points", [hash_file(points_csv)])

    def _save_plane(
        self, camera: str, fit: BeltPlaneFit, method: str, inputs: list[InputFile]
    ) -> BeltPlaneSection:
        section = BeltPlaneSection.from_fit(fit, method, self._camera(camera).intrinsics is not None)
        self._save("belt_plane", self._with_camera(camera, belt_plane=section), inputs, camera)
        return section

    def speed(self, camera: str, clip: Clip) -> BeltSection:
        frames = self._prepared(camera, clip.frames)
        motion = measure_belt_motion(frames, clip.times_s, self.plane(camera), clip.description)
        measured = belt_speed(motion, clip.description)
        section = BeltSection.from_speed(measured, camera, self.current.belt.encoder_pulses_per_mm)
        self._save("belt_speed", {"belt": section}, clip.inputs)
        return section

    def encoder(self, pulses_per_mm: float) -> BeltSection:
        """The encoder's pulses per mm. `speed_source` says where `speed_mm_s` came from: a speed a clip
        measured stays the clip's (the live path reads no encoder and needs it), so only a belt with no
        speed yet is labelled `encoder`."""
        belt = self.current.belt
        source = "encoder" if belt.speed_mm_s is None else belt.speed_source
        section = belt.model_copy(update={"speed_source": source, "encoder_pulses_per_mm": pulses_per_mm})
        self._save("belt_speed", {"belt": section}, [])
        return section

    def offsets(self, c1: Clip, c2: Clip, measured_distance_mm: float | None) -> OffsetsSection:
        prepared, motions = {}, {}
        for camera, clip in (("c1", c1), ("c2", c2)):
            prepared[camera] = self._prepared(camera, clip.frames)
            motions[camera] = measure_belt_motion(
                prepared[camera], clip.times_s, self.plane(camera), clip.description
            )
        estimate = estimate_camera_offsets(
            prepared["c1"], motions["c1"], self.plane("c1"), prepared["c2"], motions["c2"], self.plane("c2"),
            measured_distance_mm,
        )  # fmt: skip
        section = OffsetsSection.from_estimate(estimate)
        self._save("offsets", {"offsets": section}, c1.inputs + c2.inputs)
        return section

    def actuators(self, geometry: ActuatorGeometry) -> ActuatorGeometry:
        self._save("actuators", {"actuators": geometry}, [])
        return geometry


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV whose first line names its columns; a missing header is said as such, not
    as a bad number on line 2."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            found = [name.strip() for name in reader.fieldnames or []]
            if missing := [name for name in required if name not in found]:
                raise CalibrationError(
                    f"{path}: line 1: the header must name the columns {', '.join(required)} "
                    f"(missing {', '.join(missing)}; found {', '.join(found) or 'nothing'})"
                )
            return [{key.strip(): value for key, value in row.items() if key} for row in reader]
    except OSError as error:
        raise CalibrationError(f"{path}: cannot read: {error.strerror}") from None


def read_marker_csv(path: Path) -> dict[int, tuple[float, float]]:
    """Surveyed ArUco markers: CSV headed `id,x_mm,y_mm` (belt position of each marker's centre)."""
    positions = {}
    for line, row in enumerate(_csv_rows(path, ("id", "x_mm", "y_mm")), start=2):
        try:
            positions[int(row["id"])] = (float(row["x_mm"]), float(row["y_mm"]))
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(
                f"{path}: line {line}: expected an integer id and numbers x_mm, y_mm"
            ) from None
    return positions


def read_points_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surveyed points: CSV headed `u,v,x_mm,y_mm[,holdout]`; holdout 1 keeps a point out of the fit."""
    pixels, belt, holdout = [], [], []
    for line, row in enumerate(_csv_rows(path, ("u", "v", "x_mm", "y_mm")), start=2):
        try:
            pixels.append((float(row["u"]), float(row["v"])))
            belt.append((float(row["x_mm"]), float(row["y_mm"])))
            holdout.append(str(row.get("holdout") or "0").strip() in ("1", "true", "yes"))
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(
                f"{path}: line {line}: expected numbers in columns u, v, x_mm, y_mm"
            ) from None
    return np.array(pixels), np.array(belt), np.array(holdout, bool)


def _ranges(versions: list[int]) -> str:
    """1, 2, 3, 5 -> "versions 1-3, 5": what a technician can read at a glance."""
    spans: list[list[int]] = []
    for version in versions:
        if spans and version == spans[-1][1] + 1:
            spans[-1][1] = version
        else:
            spans.append([version, version])
    return "versions " + ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)
