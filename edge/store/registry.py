"""The model registry: which model acts on the belt, and every change of that.

Exactly one model is live (the database refuses a second: a partial unique index). Promoting one
retires the one before it; a rollback brings back the model that was live before the current one
and rejects the current one; the nightly loop rejects candidates its gate refuses and, beyond the
newest `keep` models, retires old ones and removes the files their runs made. The running agent
reads `live_model` every few seconds, so each change reaches the belt without a restart.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Model

RUN_FILES = ("model.onnx", "checkpoint.pt")  # what a retired run's folder gives back to the disk
RUN_FOLDERS = ("tensorrt-cache", "cache")  # the live segmenter's TensorRT engines; the prepared frames


class RegistryError(ValueError):
    """A registry change that cannot be made; the message says which model and why."""


@dataclass(frozen=True)
class ModelEntry:
    """One model as `beltcam models` and the panel show it."""

    id: int
    run_id: int | None
    path: Path
    status: str
    created_utc: datetime
    promoted_utc: datetime | None
    reason: str | None
    files_removed: bool
    metrics: dict

    @classmethod
    def of(cls, model: Model) -> ModelEntry:
        return cls(model.id, model.run_id, Path(model.path), model.status, model.created_utc,
                   model.promoted_utc, model.reason, model.files_removed, model.metrics or {})  # fmt: skip

    def quality(self) -> str:
        """The model's quality in a few characters: the gate's measure, else its own evaluation's."""
        gate = self.metrics.get("gate")
        if gate:
            return f"{gate['candidate']['measure']} {gate['candidate']['score']:.1f}"
        evaluation = self.metrics.get("evaluation") or {}
        if evaluation.get("miou") is not None:
            return f"mIoU {evaluation['miou']:.1f}"
        check = evaluation.get("object_check") or {}
        if check.get("auc") is not None:
            return f"object AUC {100 * check['auc']:.1f}"
        return f"object F1 {100 * check['f1']:.1f}" if check else "-"

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "path": str(self.path),
            "status": self.status,
            "created_utc": self.created_utc.isoformat(),
            "promoted_utc": self.promoted_utc.isoformat() if self.promoted_utc else None,
            "reason": self.reason,
            "files_removed": self.files_removed,
            "quality": self.quality(),
            "metrics": self.metrics,
        }


def live_model(store: FrameStore) -> tuple[int, Path] | None:
    """(id, ONNX path) of the live model, or None when no model is live yet."""
    with store.session() as session:
        row = session.execute(select(Model.id, Model.path).where(Model.status == "live")).first()
    return None if row is None else (row.id, Path(row.path))


def models(store: FrameStore) -> list[ModelEntry]:
    """Every model, newest first."""
    with store.session() as session:
        return [ModelEntry.of(m) for m in session.scalars(select(Model).order_by(Model.id.desc()))]


def model_entry(store: FrameStore, model_id: int) -> ModelEntry:
    with store.session() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise RegistryError(f"no model {model_id} in the registry (beltcam models list)")
        return ModelEntry.of(model)


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


def _deployable(model: Model | None, model_id: int) -> Model:
    if model is None:
        raise RegistryError(f"no model {model_id} in the registry (beltcam models list)")
    if model.files_removed or not Path(model.path).is_file():
        raise RegistryError(f"model {model_id}: its file {model.path} is gone, it cannot go live")
    return model


def promote(store: FrameStore, model_id: int, reason: str = "promoted") -> None:
    """Make `model_id` the live model; the previous live model is retired (in one transaction)."""
    with store.session() as session:
        model = _deployable(session.get(Model, model_id), model_id)
        if model.status == "live":
            return
        session.execute(
            update(Model)
            .where(Model.status == "live")
            .values(status="retired", reason=f"replaced by model {model_id}")
        )
        model.status, model.reason, model.promoted_utc = "live", reason, utc_now()


def rollback(store: FrameStore, reason: str = "rolled back") -> tuple[int, int]:
    """Bring back the model that was live before the current one (the latest promoted one, not
    rejected, whose file is still there); the current one is rejected with `reason`. Returns (from
    id, to id)."""
    with store.session() as session:
        current = session.scalars(select(Model).where(Model.status == "live")).first()
        if current is None:
            raise RegistryError("no model is live: there is nothing to roll back")
        previous = _rollback_target(session, current.id)
        if previous is None:
            raise RegistryError(
                f"no model before model {current.id} can go live again (none was live, or its file is gone)"
            )
        current.status, current.reason = "rejected", reason
        session.flush()  # the one live model is now none, before the previous one is live again
        previous.status, previous.reason = "live", f"back live: {reason} (model {current.id})"
        previous.promoted_utc = utc_now()
        return current.id, previous.id


def rollback_target(store: FrameStore) -> int | None:
    """The model a rollback would bring back (None: no live model, or none before it can go live
    again), so that advice to roll back is only given where a rollback can work."""
    with store.session() as session:
        current = session.scalars(select(Model.id).where(Model.status == "live")).first()
        previous = None if current is None else _rollback_target(session, current)
        return None if previous is None else previous.id


def _rollback_target(session, current_id: int) -> Model | None:
    earlier = session.scalars(
        select(Model)
        .where(
            Model.id != current_id,
            Model.promoted_utc.is_not(None),
            Model.files_removed.is_(False),
            Model.status != "rejected",  # rolled back once: not brought back by the next rollback
        )
        .order_by(Model.promoted_utc.desc())
    ).all()
    return next((m for m in earlier if Path(m.path).is_file()), None)


def reject(store: FrameStore, model_id: int, reason: str, gate: dict | None = None) -> None:
    """Keep a candidate the gate refused, with why and its figures (`metrics["gate"]`)."""
    _set_gate(store, model_id, "rejected", reason, gate)


def record_gate(store: FrameStore, model_id: int, gate: dict) -> None:
    """Store the gate's figures with a model it let through."""
    with store.session() as session:
        model = session.get(Model, model_id)
        model.metrics = {**(model.metrics or {}), "gate": gate}


def _set_gate(store: FrameStore, model_id: int, status: str, reason: str, gate: dict | None) -> None:
    with store.session() as session:
        model = session.get(Model, model_id)
        model.status, model.reason = status, reason
        if gate is not None:
            model.metrics = {**(model.metrics or {}), "gate": gate}


def retire_old(store: FrameStore, keep: int) -> list[int]:
    """Beyond the live model and the `keep` newest others, retire models and remove the files their
    runs made (a model registered from elsewhere keeps its file: it is not ours); returns their ids."""
    removed = []
    with store.session() as session:
        others = session.scalars(
            select(Model)
            .where(Model.status != "live", Model.files_removed.is_(False))
            .order_by(Model.id.desc())
        ).all()
        for model in others[keep:]:
            if model.run_id is None and model.status != "candidate":
                continue  # retired before, and its file is not ours to remove
            if model.run_id is not None:
                folder = Path(model.path).parent
                for name in RUN_FILES:
                    (folder / name).unlink(missing_ok=True)
                for name in RUN_FOLDERS:
                    shutil.rmtree(folder / name, ignore_errors=True)
                model.files_removed = True
            if model.status == "candidate":
                model.status, model.reason = "retired", f"older than the {keep} models kept"
            removed.append(model.id)
    return removed
