"""Every removal command's fate in the `removal_commands` table: written when it is sent, updated
as the link reports (acked, refused, expired...), so the panel and the judge can read what happened."""

from __future__ import annotations

from concurrent.futures import Future

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import RemovalCommand as RemovalCommandRow
from firmware_bridge.messages import CommandOutcome, RemovalCommand


class CommandLog:
    """One row per command in `removal_commands`, its status updated as the link reports."""

    def __init__(self, store: FrameStore) -> None:
        self.store = store

    def record(self, command: RemovalCommand, outcome: Future[CommandOutcome] | CommandOutcome) -> int:
        with self.store.session() as session:
            row = RemovalCommandRow(
                object_id=command.object_id, sequence=command.sequence, fire_time_ns=command.fire_ns,
                channels=list(command.channels), pulse_ms=command.pulse_ms, capture_ns=command.capture_ns,
                status=CommandOutcome.SENT.value, created_utc=utc_now(),
            )  # fmt: skip
            session.add(row)
            session.commit()
            row_id = row.id
        if isinstance(outcome, CommandOutcome):
            self._update(row_id, outcome)
        else:
            outcome.add_done_callback(lambda done: self._update(row_id, done.result()))
        return row_id

    def _update(self, row_id: int, outcome: CommandOutcome) -> None:
        with self.store.session() as session:
            session.get(RemovalCommandRow, row_id).status = outcome.value
            session.commit()
