"""Training runs back into the store: the finished run, the recordings it learnt from (retention
keeps those while its model is live) and its ONNX file as a `candidate` model."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Model, TrainingRun, TrainingRunRecording

if TYPE_CHECKING:  # the trainer loads torch: only the commands that train pay for it
    from trainer.train import RunResult, TrainSettings


def register_run(
    store: FrameStore,
    settings: TrainSettings,
    result: RunResult,
    recording_ids: list[int],
    started_utc: datetime,
) -> int:
    """Record a finished run and its model (a `candidate`, until someone or something promotes it;
    a run without an ONNX file, the Grad-CAM baseline, registers no model).

    A run directory is registered once: re-running a finished run returns the id it already has.
    """
    run_dir = result.run_dir.resolve()  # one run, however its folder was spelled on the command line
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    with store.session() as session:
        known = session.scalars(select(TrainingRun.id).where(TrainingRun.run_dir == str(run_dir))).first()
        if known is not None:
            return known
        run = TrainingRun(
            method=settings.method,
            status="finished",
            run_dir=str(run_dir),
            started_utc=started_utc,
            ended_utc=utc_now(),
            metrics=metrics,
        )
        session.add(run)
        session.flush()
        session.add_all(TrainingRunRecording(run_id=run.id, recording_id=rid) for rid in recording_ids)
        if result.onnx_path is not None:  # the Grad-CAM baseline is evaluated, never deployed
            session.add(
                Model(
                    run_id=run.id,
                    path=str(result.onnx_path.resolve()),
                    status="candidate",
                    created_utc=utc_now(),
                    metrics=metrics,
                )
            )
        return run.id
