"""The model registry's two questions the agent asks: which model is live, and make this one live.
Exactly one model is live; promoting one retires the one before it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Model


def live_model(store: FrameStore) -> tuple[int, Path] | None:
    """(id, ONNX path) of the live model, or None when no model is live yet."""
    with store.session() as session:
        row = session.execute(select(Model.id, Model.path).where(Model.status == "live")).first()
    return None if row is None else (row.id, Path(row.path))


def add_model(store: FrameStore, path: Path, metrics: dict | None = None) -> int:
    """Register an ONNX file that no training run of this store made (copied from another belt, a
    benchmark's) as a `candidate`; returns its id."""
    with store.session() as session:
        model = Model(path=str(path.resolve()), status="candidate", created_utc=utc_now(), metrics=metrics)
        session.add(model)
        session.flush()
        return model.id


def model_of_run(store: FrameStore, run_id: int) -> int:
    """The model a training run registered."""
    with store.session() as session:
        return session.scalars(select(Model.id).where(Model.run_id == run_id)).one()


def promote(store: FrameStore, model_id: int) -> None:
    """Make `model_id` the live model; the previous live model is retired (in one transaction)."""
    with store.session() as session:
        if session.get(Model, model_id) is None:
            raise ValueError(f"no model {model_id} in the registry")
        session.execute(
            update(Model).where(Model.status == "live", Model.id != model_id).values(status="retired")
        )
        session.execute(update(Model).where(Model.id == model_id).values(status="live"))
