"""One night of the nightly loop: resume or start a training run, judge its model, promote or keep it.

`run_night` is the whole night for a given clock (`now`, `window_end`), so that a test can live
through many nights in seconds; the scheduler (`edge.nightly.scheduler`) only decides when a night
starts and launches `beltcam nightly` at a lowered priority to run it. Whoever calls `run_night`
holds the nightly lock: any run still `running` in the store was left so by a process that is gone.

A night, in order: runs left `running` become `interrupted`; a finished run whose model a stopped
night never judged is judged, and that is the night; else the newest nightly run that paused or was
interrupted resumes from its checkpoint; otherwise a new one starts when enough new footage and
disk are there (a logged reason when not); the run trains until it finishes or the window closes
(`paused`); a finished run's model goes through the gate (`edge.nightly.gate`) and is promoted or
kept as `rejected` with the reason; models beyond the kept ones are retired with their files.
The live model is only ever changed by `promote`, so a night that fails anywhere leaves it as it was.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from edge.config import SiteConfig
from edge.nightly.manifests import USABLE, NoTrainingData, build_manifest
from edge.nightly.runs import ended_unfinished, finish_run, mark_orphaned_runs, start_run
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Model, Recording, TrainingRun
from edge.store.registry import live_model, promote, record_gate, reject, retire_old
from trainer.errors import RunPaused, TrainerError

log = logging.getLogger(__name__)
RESUMABLE = ("paused", "interrupted")
STORE_MANIFEST = "store_manifest.json"


@dataclass
class NightReport:
    outcome: str  # skipped | paused | failed | promoted | rejected (a stop raises KeyboardInterrupt)
    reason: str
    run_id: int | None = None
    model_id: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


def new_frames(store: FrameStore) -> int:
    """Before/after frames captured since the newest nightly run started (all of them before the
    first): footage a run held out or could not use is not new again the next night."""
    with store.session() as session:
        since = session.scalar(
            select(func.max(TrainingRun.started_utc)).where(TrainingRun.origin == "nightly")
        )
        query = (
            select(func.count(Frame.id))
            .join(Recording, Recording.id == Frame.recording_id)
            .where(Recording.status.in_(USABLE), Recording.label.in_(("before", "after")))
        )
        if since is not None:
            query = query.where(Frame.capture_utc > since)
        return int(session.scalar(query))


def _resumable(store: FrameStore) -> TrainingRun | None:
    """The newest nightly run that stopped unfinished and whose folder still holds its start."""
    with store.session() as session:
        run = session.scalars(
            select(TrainingRun)
            .where(TrainingRun.origin == "nightly")
            .order_by(TrainingRun.id.desc())
            .limit(1)
        ).first()
        if run is None or run.status not in RESUMABLE:
            return None
        session.expunge(run)
    return run if (Path(run.run_dir) / STORE_MANIFEST).is_file() else None


def _unjudged(store: FrameStore) -> tuple[int, int, Path] | None:
    """(run id, model id, run folder) of the newest nightly run when it finished but its model was
    never judged (the night stopped during the gate)."""
    with store.session() as session:
        row = session.execute(
            select(TrainingRun.id, Model.id, TrainingRun.run_dir)
            .join(Model, Model.run_id == TrainingRun.id)
            .where(TrainingRun.origin == "nightly", TrainingRun.status == "finished")
            .where(Model.status == "candidate", Model.reason.is_(None))
            .order_by(TrainingRun.id.desc())
            .limit(1)
        ).first()
    return None if row is None else (row[0], row[1], Path(row[2]))


def nightly_settings(config: SiteConfig, belt_flow: bool):
    """The trainer's settings for a nightly run, from the site file."""
    from trainer.train import TrainSettings  # torch: only in the process that trains

    schedule = config.schedule
    return TrainSettings(
        method=schedule.method,
        backbone=config.model.backbone,
        image_size=config.model.image_size,
        epochs=schedule.epochs,
        batch_size=schedule.batch_size,
        samples_per_epoch=schedule.samples_per_epoch,
        flow="belt" if belt_flow else "dis",
        weights=str(config.model.pretrained_weights),
    )


def _start(config: SiteConfig, store: FrameStore, now: datetime) -> tuple[int, Path] | NightReport:
    """A new run's row and folder, or the report of a night that does not train."""
    schedule = config.schedule
    fresh = new_frames(store)
    if fresh < schedule.min_new_frames:
        return NightReport(
            "skipped", f"{fresh} new before/after frames since the last nightly run, "
            f"{schedule.min_new_frames} needed (schedule.min_new_frames)",
        )  # fmt: skip
    free_gb = shutil.disk_usage(config.storage.data_dir).free / 1e9
    if free_gb < schedule.min_free_gb:
        return NightReport(
            "skipped", f"{free_gb:.1f} GB free on {config.storage.data_dir}, {schedule.min_free_gb:g} GB "
            "needed to train (schedule.min_free_gb)",
        )  # fmt: skip
    run_dir = config.storage.data_dir / "runs" / f"nightly-{now:%Y%m%d-%H%M%S}"
    since = now - timedelta(days=schedule.recent_days)
    try:
        _, used = build_manifest(store, run_dir / STORE_MANIFEST, config.calibration_file, since)
    except NoTrainingData as error:
        return NightReport("skipped", str(error))
    method = schedule.method
    run_id = start_run(store, method, run_dir, used, origin="nightly")
    log.info("nightly run %d: %s on %d recordings in %s", run_id, method, len(used), run_dir)
    return run_id, run_dir


def run_night(
    config: SiteConfig, store: FrameStore, now: datetime, window_end: datetime, progress: bool = False
) -> NightReport:
    """One night (see the module doc); `now` and `window_end` are aware datetimes."""
    from trainer.manifest import load_manifest
    from trainer.train import train

    stages: dict[str, float] = {}
    orphaned = mark_orphaned_runs(store)
    if orphaned:
        log.warning(
            "%d training run(s) had stopped without a word (killed or power lost): interrupted", orphaned
        )
    unjudged = _unjudged(store)
    if unjudged is not None:
        run_id, model_id, run_dir = unjudged
        log.info(
            "model %d of nightly run %d was never judged (its night stopped): judged now", model_id, run_id
        )
        return _judged(config, store, run_id, run_dir, model_id, {}, progress)
    began = time.monotonic()
    resumed = _resumable(store)
    if resumed is not None:
        run_id, run_dir = resumed.id, Path(resumed.run_dir)
        log.info("nightly run %d resumes (%s: %s)", run_id, resumed.status, resumed.reason)
        start_run(store, resumed.method, run_dir, [], origin="nightly")
    else:
        started = _start(config, store, now)
        if isinstance(started, NightReport):
            log.info("no training tonight: %s", started.reason)
            return started
        run_id, run_dir = started
    stages["prepare"] = round(time.monotonic() - began, 2)

    manifest, _ = load_manifest(run_dir / STORE_MANIFEST)
    belt_flow = all(s.belt_velocity_px_s is not None for s in manifest.sequences)
    settings = nightly_settings(config, belt_flow)
    began = time.monotonic()
    try:
        with ended_unfinished(store, run_id, "the next night resumes it"):
            result = train(run_dir / STORE_MANIFEST, settings, run_dir, progress=progress,
                           stop_at=window_end.timestamp())  # fmt: skip
    except RunPaused as paused:
        return NightReport("paused", str(paused), run_id, stage_seconds=stages)
    except TrainerError as error:
        return NightReport("failed", str(error), run_id, stage_seconds=stages)
    stages["train"] = round(time.monotonic() - began, 2)
    model_id = finish_run(store, run_id, result)
    return _judged(config, store, run_id, run_dir, model_id, stages, progress)


def _judged(
    config, store, run_id: int, run_dir: Path, model_id: int, stages: dict, progress: bool
) -> NightReport:
    """The gate's verdict on a finished run's model, then old models retired."""
    report = _judge(config, store, run_dir, model_id, progress)
    report.run_id, report.stage_seconds = run_id, {**stages, **report.stage_seconds}
    retired = retire_old(store, config.schedule.keep_models)
    if retired:
        log.info("retired models %s (schedule.keep_models %d)", retired, config.schedule.keep_models)
    return report


def _judge(
    config: SiteConfig, store: FrameStore, run_dir: Path, model_id: int, progress: bool
) -> NightReport:
    from edge.nightly.gate import judge

    live = live_model(store)
    c1 = config.camera("c1")
    began = time.monotonic()
    verdict = judge(run_dir, run_dir / "model.onnx", live[1] if live else None, config.schedule.gate,
                    1000.0 / c1.fps, list(config.live.providers), progress)  # fmt: skip
    stages = {"gate": round(time.monotonic() - began, 2)}
    if verdict.promote:
        record_gate(store, model_id, verdict.to_json())
        promote(store, model_id, verdict.reason)
        log.info("model %d is live: %s", model_id, verdict.reason)
        return NightReport("promoted", verdict.reason, model_id=model_id, stage_seconds=stages)
    reject(store, model_id, verdict.reason, verdict.to_json())
    log.info("model %d kept as rejected: %s", model_id, verdict.reason)
    return NightReport("rejected", verdict.reason, model_id=model_id, stage_seconds=stages)
