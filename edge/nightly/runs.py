"""Training runs in the store, from their start: a run is `running` before its first epoch, so a
run that is killed or loses power is found at the next start (`interrupted`) and resumed from its
checkpoint, never mistaken for finished. A finished run records the recordings it learnt from
(retention keeps those while its model is live) and its ONNX file as a `candidate` model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Model, TrainingRun, TrainingRunRecording
from trainer.errors import RunPaused, TrainerError

if TYPE_CHECKING:  # the trainer loads torch: only the commands that train pay for it
    from trainer.train import RunResult, TrainSettings

ENDED_WITHOUT_A_WORD = "the training process ended without finishing (killed, crashed or power lost)"


def start_run(
    store: FrameStore, method: str, run_dir: Path, recording_ids: list[int], origin: str = "manual"
) -> int:
    """The run's row, `running` from now (the row a folder already has, when it is resumed)."""
    run_dir = run_dir.resolve()  # one run, however its folder was spelled on the command line
    with store.session() as session:
        run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == str(run_dir))).first()
        if run is not None:
            if run.status != "finished":
                run.status, run.reason, run.ended_utc = "running", None, None
            return run.id
        run = TrainingRun(
            method=method, status="running", run_dir=str(run_dir), started_utc=utc_now(), origin=origin
        )
        session.add(run)
        session.flush()
        session.add_all(TrainingRunRecording(run_id=run.id, recording_id=rid) for rid in recording_ids)
        return run.id


def recordings_of(store: FrameStore, run_id: int) -> list[int]:
    """The recordings a run learns from (another candidate of the same night learns from them too)."""
    with store.session() as session:
        query = select(TrainingRunRecording.recording_id).where(TrainingRunRecording.run_id == run_id)
        return sorted(session.scalars(query))


def finish_run(store: FrameStore, run_id: int, result: RunResult) -> int | None:
    """Mark the run finished with its metrics and register its model as a `candidate` (once: a
    finished run trained again keeps its model); returns the model's id (None for the Grad-CAM
    baseline, which is evaluated, never deployed)."""
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    with store.session() as session:
        run = session.get(TrainingRun, run_id)
        run.status, run.reason, run.metrics = "finished", None, metrics
        run.ended_utc = run.ended_utc or utc_now()
        known = session.scalars(select(Model.id).where(Model.run_id == run_id)).first()
        if known is not None or result.onnx_path is None:
            return known
        model = Model(
            run_id=run_id,
            path=str(result.onnx_path.resolve()),
            status="candidate",
            created_utc=utc_now(),
            metrics=metrics,
        )
        session.add(model)
        session.flush()
        return model.id


def end_run(store: FrameStore, run_id: int, status: str, reason: str) -> None:
    """A run that stopped unfinished: `paused` (its window closed), `interrupted` (stopped from
    outside; resumable) or `failed` (it cannot go on), with the reason in one line."""
    with store.session() as session:
        run = session.get(TrainingRun, run_id)
        run.status, run.reason, run.ended_utc = status, reason[:512], utc_now()


@contextmanager
def ended_unfinished(store: FrameStore, run_id: int, resume_hint: str) -> Iterator[None]:
    """Around a run's training: a stop from outside leaves it `interrupted` (resumable), an error it
    reports `failed` with that error's line; either way the error goes on up."""
    try:
        yield
    except KeyboardInterrupt:
        end_run(store, run_id, "interrupted", f"stopped (Ctrl-C or SIGTERM); {resume_hint}")
        raise
    except TrainerError as error:
        status = "paused" if isinstance(error, RunPaused) else "failed"
        end_run(store, run_id, status, str(error))
        raise


def mark_orphaned_runs(store: FrameStore) -> int:
    """Nightly runs left `running` by a process that is gone become `interrupted` (called by whoever
    holds the nightly lock, so no nightly run is really running; a `beltcam train` a technician
    started may be, and is left alone); returns how many."""
    with store.session() as session:
        changed = session.execute(
            update(TrainingRun)
            .where(TrainingRun.status == "running", TrainingRun.origin == "nightly")
            .values(status="interrupted", reason=ENDED_WITHOUT_A_WORD, ended_utc=utc_now())
        )
        return changed.rowcount


def register_run(
    store: FrameStore,
    settings: TrainSettings,
    result: RunResult,
    recording_ids: list[int],
    started_utc: datetime,
    origin: str = "manual",
) -> int:
    """Record a run that finished outside the store's watch (the demo's starter model, a benchmark's)
    and its model; returns the run's id. A run directory is registered once."""
    run_id = start_run(store, settings.method, result.run_dir, recording_ids, origin)
    with store.session() as session:
        run = session.get(TrainingRun, run_id)
        if run.status != "finished":
            run.started_utc = started_utc
    finish_run(store, run_id, result)
    return run_id
