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
kept as `rejected` with the reason; a new run that was judged is followed, while the window has
room, by runs of the site's other candidate methods (`schedule.candidates`) on the same footage,
each judged against the model live by then; models beyond the kept ones are retired with their files.
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
from edge.nightly.runs import ended_unfinished, finish_run, mark_orphaned_runs, recordings_of, start_run
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Model, Recording, TrainingRun
from edge.store.registry import live_model, promote, record_gate, reject, retire_old
from trainer.errors import RunPaused, TrainerError
from trainer.variants import variant_settings

log = logging.getLogger(__name__)
RESUMABLE = ("paused", "interrupted")
ROOM_MARGIN = 1.25  # another candidate starts only with a quarter more time left than a run took
STORE_MANIFEST = "store_manifest.json"


@dataclass
class NightReport:
    outcome: str  # skipped | paused | failed | promoted | rejected (a stop raises KeyboardInterrupt)
    reason: str
    run_id: int | None = None
    model_id: int | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    method: str | None = None  # the run's method
    others: list[NightReport] = field(default_factory=list)  # schedule.candidates trained after it


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


def nightly_settings(config: SiteConfig, belt_flow: bool, method: str):
    """The trainer's settings for a nightly run of `method`, from the site file."""
    from trainer.train import TrainSettings  # torch: only in the process that trains

    schedule = config.schedule
    return TrainSettings(
        **variant_settings(method),
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
        run_id, run_dir, method = resumed.id, Path(resumed.run_dir), resumed.method
        log.info("nightly run %d (%s) resumes (%s: %s)", run_id, method, resumed.status, resumed.reason)
        start_run(store, method, run_dir, [], origin="nightly")
    else:
        started = _start(config, store, now)
        if isinstance(started, NightReport):
            log.info("no training tonight: %s", started.reason)
            return started
        run_id, run_dir = started
        method = config.schedule.method
    stages["prepare"] = round(time.monotonic() - began, 2)
    first = _train_and_judge(config, store, run_id, run_dir, method, window_end, stages, progress)
    if resumed is None:
        _other_candidates(config, store, first, run_dir, window_end, progress)
    return first


def _train_and_judge(
    config: SiteConfig,
    store: FrameStore,
    run_id: int,
    run_dir: Path,
    method: str,
    window_end: datetime,
    stages: dict[str, float],
    progress: bool,
) -> NightReport:
    """Train (or go on training) one run until it finishes or the window closes, then judge it."""
    from trainer.manifest import load_manifest
    from trainer.train import train

    manifest, _ = load_manifest(run_dir / STORE_MANIFEST)
    belt_flow = all(s.belt_velocity_px_s is not None for s in manifest.sequences)
    settings = nightly_settings(config, belt_flow, method)
    began = time.monotonic()
    try:
        with ended_unfinished(store, run_id, "the next night resumes it"):
            result = train(run_dir / STORE_MANIFEST, settings, run_dir, progress=progress,
                           stop_at=window_end.timestamp())  # fmt: skip
    except RunPaused as paused:
        return NightReport("paused", str(paused), run_id, stage_seconds=stages, method=method)
    except TrainerError as error:
        return NightReport("failed", str(error), run_id, stage_seconds=stages, method=method)
    stages["train"] = round(time.monotonic() - began, 2)
    model_id = finish_run(store, run_id, result)
    report = _judged(config, store, run_id, run_dir, model_id, stages, progress)
    report.method = method
    return report


def room_for_another(took_s: float, window_end: datetime, now_s: float) -> str | None:
    """None when the window (ending at `window_end`, the clock now at `now_s`) has room for one more
    run like one that took `took_s` seconds (with ROOM_MARGIN to spare); else why not."""
    left_s = window_end.timestamp() - now_s
    if left_s >= ROOM_MARGIN * took_s:
        return None
    return f"{left_s / 60:.0f} min left in the window, a run took {took_s / 60:.0f} min"


def _other_candidates(
    config: SiteConfig,
    store: FrameStore,
    first: NightReport,
    run_dir: Path,
    window_end: datetime,
    progress: bool,
) -> None:
    """Tonight's other methods (`schedule.candidates`), on the same footage as the first run, while
    the window has room; each judged against the model live by then (so a candidate must beat the
    first run's model if that went live). Their reports go into `first.others`."""
    if first.outcome not in ("promoted", "rejected"):
        return  # paused or failed: the window or the footage will not do better for the others
    took = first.stage_seconds.get("train", 0.0)
    promoted_tonight = first.outcome == "promoted"
    for method in (m for m in config.schedule.candidates if m != first.method):
        no_room = room_for_another(took, window_end, time.time())
        if no_room is not None:
            log.info("no %s run tonight: %s", method, no_room)
            first.others.append(NightReport("skipped", no_room, method=method))
            return
        other_dir = run_dir.with_name(f"{run_dir.name}-{method}")
        other_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / STORE_MANIFEST, other_dir / STORE_MANIFEST)
        run_id = start_run(store, method, other_dir, recordings_of(store, first.run_id), origin="nightly")
        log.info("nightly run %d: %s, another candidate on the same footage", run_id, method)
        judged_by = _same_footage_gate(config) if promoted_tonight else config
        report = _train_and_judge(judged_by, store, run_id, other_dir, method, window_end, {}, progress)
        first.others.append(report)
        if report.outcome not in ("promoted", "rejected"):
            return
        promoted_tonight = promoted_tonight or report.outcome == "promoted"


def _same_footage_gate(config: SiteConfig) -> SiteConfig:
    """The site file with a gate margin of at most 0: the margin lets a model judged on newer footage
    replace one a little better on older footage; against a model of tonight, judged on the same
    footage, a candidate must be at least as good."""
    gate = config.schedule.gate
    strict = gate.model_copy(update={"margin": min(gate.margin, 0.0)})
    return config.model_copy(update={"schedule": config.schedule.model_copy(update={"gate": strict})})


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
                    1000.0 / c1.fps, list(config.live.providers), progress, config.live.threads)  # fmt: skip
    stages = {"gate": round(time.monotonic() - began, 2)}
    if verdict.promote:
        record_gate(store, model_id, verdict.to_json())
        promote(store, model_id, verdict.reason)
        log.info("model %d is live: %s", model_id, verdict.reason)
        return NightReport("promoted", verdict.reason, model_id=model_id, stage_seconds=stages)
    reject(store, model_id, verdict.reason, verdict.to_json())
    log.info("model %d kept as rejected: %s", model_id, verdict.reason)
    return NightReport("rejected", verdict.reason, model_id=model_id, stage_seconds=stages)
