"""The pre-flight checks of `beltcam doctor`: each item pass / warn / fail with what was seen and,
when it is not a pass, the fix in one line.

While the agent runs (it holds the data directory), the cameras and a serial link belong to it: their
items are read from the store's camera status instead of opening the devices a second time.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from calibration import CalibrationError, CalibrationFile, load_calibration
from edge.actuators.link import open_transport
from edge.capture.cameras import build_sources
from edge.capture.mounts import MOUNTED, MountChange, last_mount_changes
from edge.capture.report import UNHEALTHY_STATES, camera_reports
from edge.config import ConfigError, SiteConfig, load_config
from edge.live.site_check import live_geometry_problem
from edge.sources.base import SourceError
from edge.store.database import DatabaseError, SchemaOutdated
from edge.store.disk_report import disk_report
from edge.store.frame_store import FrameStore
from edge.store.lock import DataDirLock
from edge.store.models import Recording
from edge.store.reconcile import check_store
from edge.store.registry import live_model, models, rollback_target
from trainer.variants import DEFAULT_OUTPUT_STRIDE, class_map_cells, uses_temporal_term

PASS, WARN, FAIL = "pass", "warn", "fail"
CAMERA_SAMPLE_S = 3.0
RATE_SHORTFALL = 0.8  # delivering below 80 % of the configured rate is a warning
DARK, BRIGHT = 20.0, 235.0  # mean grey level outside these: exposure is wrong
UNPAIRED_SHARE = 0.1
LOW_DISK_DAYS = 7.0
LINK_WAIT_S = 5.0
CALIBRATION_OLD_DAYS = 365
PLANE_STEPS = ("belt_plane", "simulator")  # the steps that measure where a camera looks
TEMPORAL_MIN_IMAGE_SIZE = 256  # below it, at the default stride, the temporal term cost on a crowded belt
TEMPORAL_MIN_CELLS = TEMPORAL_MIN_IMAGE_SIZE // DEFAULT_OUTPUT_STRIDE  # class map cells across
TRAIN_ONE = "train one (`beltcam nightly`; on the simulated belt `beltcam demo` trains a starter model)"


@dataclass(frozen=True)
class Check:
    item: str
    status: str
    seen: str
    fix: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def run_checks(config_path: Path, site_file_only: bool = False) -> Iterator[Check]:
    """Every item in order; with `site_file_only`, the items judged from the file alone (the site file
    and its training settings): nothing opened or created, for a file edited away from the belt."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        yield Check(
            "site file", FAIL, str(error), "correct the field named (docs/config.md), or `beltcam init`"
        )
        return
    yield Check("site file", PASS, f"valid ({config.site_name})")
    yield _training(config)
    if site_file_only:
        return
    try:
        store = FrameStore.from_config(config.storage)
    except (DatabaseError, OSError, SQLAlchemyError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        fix = (
            "back it up (`beltcam backup FILE`), then `beltcam db upgrade`"
            if isinstance(error, SchemaOutdated)
            else "check storage.data_dir / storage.database_url and that the disk or server is there"
        )
        yield Check("database", FAIL, f"{config.storage.data_dir}: {reason}", fix)
        yield from _without_store(config)
        return
    try:
        yield Check("database", PASS, f"reachable: {config.storage.shown_database_url()}")
        agent = DataDirLock(config.storage.data_dir, "beltcam doctor").owner()
        yield from (_cameras_of_agent(store, agent) if agent else _cameras_opened(config))
        yield from _pairing(store)
        yield _calibration(config, store)
        yield _model(config, store)
        yield _link(config, agent)
        yield _disk(config, store)
        yield _store(store, agent)
        yield _time_sync()
    except SQLAlchemyError as error:  # a database that opened but cannot be read (corrupt, gone)
        yield Check(
            "database", FAIL, str(error).splitlines()[0], "`beltcam db check`; restore the last backup"
        )
    finally:
        store.close()


def _training(config: SiteConfig) -> Check:
    """Whether the nightly methods suit the input scale: the temporal term needs class maps of at
    least 16x12 cells; on coarser ones it spreads onto touching objects, and a site training only
    such methods would never be offered the better model."""
    schedule, size = config.schedule, config.model.image_size
    methods = [schedule.method, *schedule.candidates]
    seen = f"{', '.join(methods)} at model.image_size {size}"
    coarse = [m for m in methods if uses_temporal_term(m) and class_map_cells(m, size) < TEMPORAL_MIN_CELLS]
    if len(coarse) < len(methods):
        return Check("training", PASS, seen)
    return Check(
        "training",
        WARN,
        f"{seen}: on class maps under {TEMPORAL_MIN_CELLS} cells across (below {TEMPORAL_MIN_IMAGE_SIZE} px "
        "at the default stride) the temporal term spreads onto touching objects (a point below "
        "puzzlecam on a crowded simulated belt)",
        f"set model.image_size: {TEMPORAL_MIN_IMAGE_SIZE}, or add ours_os8 (finer class maps) or puzzlecam "
        "to schedule.candidates so the site's footage decides",
    )


def _without_store(config: SiteConfig) -> Iterator[Check]:
    """What can still be judged when the database cannot be read: the devices and the clock."""
    agent = DataDirLock(config.storage.data_dir, "beltcam doctor").owner()
    if not agent:
        yield from _cameras_opened(config)
    yield _link(config, agent)
    yield _time_sync()


def _cameras_opened(config: SiteConfig) -> Iterator[Check]:
    for camera_id, source in build_sources(config).items():
        camera = config.camera(camera_id)
        item = f"camera {camera_id}"
        try:
            source.open()
        except SourceError as error:
            yield Check(
                item, FAIL, f"does not open: {error}", f"check cameras[{camera_id}].source and its cable"
            )
            continue
        try:
            frames, started = [], time.monotonic()
            while time.monotonic() - started < CAMERA_SAMPLE_S:
                frames.append(source.read(timeout_s=CAMERA_SAMPLE_S).image)
        except SourceError as error:
            yield Check(item, FAIL, f"opened, then no frames: {error}", "check the camera's stream and power")
            continue
        finally:
            source.close()
        rate = (len(frames) - 1) / max(time.monotonic() - started, 1e-6)
        brightness = float(np.mean([frame.mean() for frame in frames]))
        seen = f"{rate:.1f} fps of {camera.fps:g}, mean brightness {brightness:.0f}/255"
        if rate < RATE_SHORTFALL * camera.fps:
            yield Check(
                item,
                WARN,
                seen,
                "the camera delivers slower than cameras[].fps: lower fps or check bandwidth",
            )
        elif not DARK <= brightness <= BRIGHT:
            yield Check(
                item, WARN, seen, "too dark or too bright: set the exposure (or the lamps) for the belt"
            )
        else:
            yield Check(item, PASS, seen)


def _cameras_of_agent(store: FrameStore, agent: str) -> Iterator[Check]:
    reports = {report.camera: report for report in camera_reports(store)}
    for camera_id in ("c1", "c2"):
        report = reports.get(camera_id)
        item = f"camera {camera_id}"
        if report is None:
            yield Check(
                item, WARN, f"{agent} runs but has not reported this camera yet", "wait a few seconds"
            )
        elif report.state in UNHEALTHY_STATES:
            why = f": {report.last_error}" if report.last_error else ""
            yield Check(
                item,
                FAIL,
                f"{report.state} in {agent}{why}",
                "check the camera; `beltcam cameras` has its history",
            )
        else:
            yield Check(item, PASS, f"{report.state} in {agent} ({report.counts.frames} frames this session)")


def _pairing(store: FrameStore) -> Iterator[Check]:
    reports = [r for r in camera_reports(store) if r.camera == "c1"]
    if not reports or reports[0].paired + reports[0].unpaired == 0:
        yield _stored_pairing(store)  # a C1 frame whose belt had not reached C2 is neither
        return
    report = reports[0]
    share = report.unpaired / (report.paired + report.unpaired)
    seen = f"{report.paired} C1 frames paired with C2, {report.unpaired} not ({share:.0%})"
    if share > UNPAIRED_SHARE:
        yield Check("C1/C2 pairing", WARN, seen, "if the cameras drop frames (`beltcam cameras`), mend that "
                    "first; else calibrate the camera offsets (`beltcam calibrate offsets`)")  # fmt: skip
    else:
        yield Check("C1/C2 pairing", PASS, seen)


def _stored_pairing(store: FrameStore) -> Check:
    """Pairing as the last recording session's recordings stored it, when the live counters say
    nothing: a session shorter than the belt's travel from C1 to C2 pairs no frame, and has none
    unpaired either."""
    frames, paired = _last_session_pairs(store)
    if frames == 0:
        return Check(
            "C1/C2 pairing",
            WARN,
            "no recording yet to tell",
            "record a minute (`beltcam record --duration 60`)",
        )
    seen = f"{paired} of the last recording session's {frames} C1 frames paired with C2"
    if paired == 0:
        return Check(
            "C1/C2 pairing", WARN, seen, "record longer than the belt takes from C1 to C2 "
            "(`beltcam record --duration 60`); if still none, `beltcam calibrate offsets`",
        )  # fmt: skip
    return Check("C1/C2 pairing", PASS, seen)


def _last_session_pairs(store: FrameStore) -> tuple[int, int]:
    """(C1 frames, of them paired) of the newest recording session."""
    with store.session() as session:
        newest = session.scalars(
            select(Recording.session)
            .where(Recording.camera == "c1", Recording.session.is_not(None), Recording.frame_count > 0)
            .order_by(Recording.started_utc.desc())
        ).first()
        if newest is None:
            return 0, 0
        frames, paired = session.execute(
            select(func.sum(Recording.frame_count), func.sum(Recording.paired_frames)).where(
                Recording.camera == "c1", Recording.session == newest
            )
        ).one()
    return frames, paired


def _calibration(config: SiteConfig, store: FrameStore) -> Check:
    path = config.calibration_file
    if path is None:
        return Check(
            "calibration",
            FAIL,
            "calibration_file is not set",
            "set calibration_file and calibrate (docs/calibration.md)",
        )
    if not path.is_file():
        return Check(
            "calibration", FAIL, f"{path}: no such file", "calibrate the site (docs/calibration.md), or "
            "correct calibration_file"
        )  # fmt: skip
    try:
        calibration = load_calibration(path)
    except CalibrationError as error:
        return Check("calibration", FAIL, str(error), "calibrate the site (docs/calibration.md)")
    problem = live_geometry_problem(calibration)
    if problem is not None:
        return Check("calibration", FAIL, problem, "run the missing `beltcam calibrate` step")
    moved = _mounted_since(calibration, last_mount_changes(store))
    if moved is not None:
        return moved
    age_days = (datetime.now(UTC) - datetime.fromtimestamp(path.stat().st_mtime, UTC)).days
    seen = f"{path} version {calibration.version}, saved {age_days} days ago"
    if age_days > CALIBRATION_OLD_DAYS:
        return Check("calibration", WARN, seen, "over a year old: check it (`beltcam calibrate show`)")
    return Check("calibration", PASS, seen)


def _plane_measured(calibration: CalibrationFile, camera: str) -> datetime | None:
    """When this camera's belt plane was last measured (entries of files older than the camera field
    count for both cameras)."""
    return max(
        (
            entry.saved_utc
            for entry in calibration.history
            if entry.step in PLANE_STEPS and entry.camera in (camera, None)
        ),
        default=None,
    )


def _mounted_since(calibration: CalibrationFile, changes: dict[str, MountChange]) -> Check | None:
    """A camera mounted anew after its belt plane was measured fails (said by the technician) or
    warns (a source seen to change, which may only be a renumbered device)."""
    found = []
    for camera, change in sorted(changes.items()):
        measured = _plane_measured(calibration, camera)
        if measured is not None and measured >= change.utc:
            continue
        when = change.utc.strftime("%Y-%m-%d %H:%M:%S UTC")
        since = f"measured {measured:%Y-%m-%d %H:%M:%S UTC}" if measured else "never measured"
        fix = f"`beltcam calibrate plane --camera {camera} --image PHOTO`, then offsets (docs/calibration.md)"
        if change.state == MOUNTED:
            seen = f"{camera} mounted anew {when} ({change.detail}); its belt plane {since}"
            found.append(Check("calibration", FAIL, seen, fix))
        else:
            seen = f"{camera}'s {change.detail} on {when}; its belt plane {since}"
            found.append(Check("calibration", WARN, seen, f"if the camera was replaced or moved, {fix}"))
    return min(found, key=lambda check: check.status != FAIL, default=None)


def _model(config: SiteConfig, store: FrameStore) -> Check:
    """The live model opened the way `beltcam run` opens it: with the site's providers, or as the
    native TensorRT engine when `live.engine` asks for one."""
    found = live_model(store)
    if found is None:
        return Check("live model", FAIL, "no live model", TRAIN_ONE)
    model_id, path = found
    from edge.live.segmenter import ModelRefused, open_native_engine, open_session  # torch, ONNX Runtime

    native = config.live.engine == "tensorrt"
    try:
        providers = ["cpu"] if native else list(config.live.providers)
        session, info = open_session(path, providers, config.live.threads)
    except ModelRefused as error:
        return Check("live model", FAIL, f"model {model_id}: {error}", _instead_of(store, model_id))
    if native:
        try:
            open_native_engine(path, info)
        except ModelRefused as error:
            fix = "install TensorRT and pycuda (the `jetson` extra), or set live.engine: onnxruntime"
            return Check("live model", FAIL, f"model {model_id}: {error}", fix)
        used = "a native TensorRT engine"
    else:
        used = ", ".join(p.removesuffix("ExecutionProvider") for p in session.get_providers())
    return Check("live model", PASS, f"model {model_id} ({info.method}, {info.backbone}) loads on {used}")


def _instead_of(store: FrameStore, broken_id: int) -> str:
    """What to make live instead of a broken model, only if it opens: the model a rollback brings
    back, else the newest other model not rejected (`promote`), else none: train one."""
    from edge.live.segmenter import ModelRefused, open_session

    earlier = rollback_target(store)
    others = [
        entry for entry in models(store)
        if entry.id != broken_id and entry.status != "rejected" and not entry.files_removed
    ]  # fmt: skip
    for entry in sorted(others, key=lambda entry: entry.id != earlier):  # the rollback's first, then newest
        try:
            open_session(entry.path, ["cpu"])
        except ModelRefused:
            continue
        if entry.id == earlier:
            return f"bring back model {entry.id} (`beltcam models rollback`)"
        return f"make model {entry.id} live (`beltcam models promote {entry.id}`)"
    return TRAIN_ONE


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _link(config: SiteConfig, agent: str | None) -> Check:
    if config.bridge.dry_run:
        return Check(
            "actuator link",
            WARN,
            "dry run: no valve will open",
            "set bridge.dry_run: false to remove objects",
        )
    if agent and config.bridge.transport != "modbus_tcp":
        return Check("actuator link", PASS, f"held by {agent} (its state is on the panel's Actuators page)")
    with _quiet("pymodbus"), open_transport(config) as link:  # the item says it: not its retries too
        connected = link.transport.wait_connected(LINK_WAIT_S)
        status = link.transport.status()
    if not connected:
        fix = "check the cable / address (bridge.* in the site file) and the controller's power"
        return Check("actuator link", FAIL, f"{status.transport}: not connected: {status.alarm}", fix)
    where = " (the built-in valve simulator)" if link.simulator is not None else ""
    one_way = f", one-way {status.one_way_ms:.2f} ms" if status.one_way_ms is not None else ""
    return Check("actuator link", PASS, f"{status.transport}{where} connected, heartbeat answered{one_way}")


def _disk(config: SiteConfig, store: FrameStore) -> Check:
    disk = disk_report(store, config.storage)
    seen = (
        f"{disk['free_mb']:.0f} MB free (floor {disk['min_free_mb']:.0f} MB), {disk['used_mb']:.0f} MB stored"
    )
    if disk["free_mb"] <= disk["min_free_mb"]:
        return Check(
            "disk", FAIL, seen, "free space below storage.min_free_mb: recording pauses; free the disk"
        )
    if disk["days_to_full"] is not None and disk["days_to_full"] < LOW_DISK_DAYS:
        return Check(
            "disk",
            WARN,
            f"{seen}; full in {disk['days_to_full']:g} days",
            "set storage.disk_quota_mb below the free space (old frames are then evicted), or add disk",
        )
    if disk["days_to_quota"] is not None:
        seen += f"; quota reached in {disk['days_to_quota']:g} days, then the oldest frames are evicted"
    elif disk["days_to_full"] is not None:
        seen += f"; full in {disk['days_to_full']:g} days"
    return Check("disk", PASS, seen)


def _store(store: FrameStore, agent: str | None) -> Check:
    report = check_store(store)
    if report.clean:
        return Check("store", PASS, f"{report.indexed_frames} frames, files and index agree")
    if agent:  # a running recorder has files not indexed yet and an open recording: that is normal
        return Check("store", PASS, f"{report.indexed_frames} frames; being written by {agent}")
    return Check("store", WARN, "files and index disagree", "run `beltcam db check --repair`")


def _time_sync() -> Check:
    timedatectl = shutil.which("timedatectl")
    if timedatectl is None:
        return Check(
            "time sync", WARN, "cannot tell (no timedatectl)", "make sure NTP (chrony/systemd-timesyncd) runs"
        )
    try:
        asked = [timedatectl, "show", "-p", "NTPSynchronized", "--value"]
        answer = subprocess.run(asked, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return Check("time sync", WARN, f"cannot tell ({error})", "make sure NTP runs")
    if answer == "yes":
        return Check("time sync", PASS, "NTP synchronised")
    return Check(
        "time sync",
        WARN,
        f"NTP not synchronised ({answer or 'no answer'})",
        "enable NTP: `timedatectl set-ntp true`",
    )
