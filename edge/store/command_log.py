"""Every removal command's fate in the `removal_commands` table: written when it is sent, updated
as the link reports (acked, dropped, late...), so the panel and the judge can read what happened.

The link's thread must never wait for the database (DESIGN.md): a locked index would delay its
heartbeats, the device would go fail-safe and cancel everything scheduled. So `record` and the
outcome callbacks only put entries on a bounded queue; the log's own thread writes them in batches,
and keeps retrying a batch the database refuses. When the queue is full an entry is counted as lost
(and logged once), never waited for.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import RemovalCommand as RemovalCommandRow
from firmware_bridge.messages import CommandOutcome, RemovalCommand

log = logging.getLogger(__name__)
QUEUE_CAPACITY = 10_000
RETRY_S = 0.2


@dataclass(frozen=True)
class _Entry:
    key: int
    command: RemovalCommand | None  # a new row; None for a status update
    outcome: CommandOutcome
    detail: dict | None = None  # e.g. {"kind": "test_fire"}: what a row that is no removal was


class CommandLog:
    def __init__(self, store: FrameStore, capacity: int = QUEUE_CAPACITY) -> None:
        self.store = store
        self.lost = 0  # entries that found the queue full
        self._entries: queue.Queue[_Entry | None] = queue.Queue(maxsize=capacity)
        self._keys = itertools.count()
        self._row_ids: dict[int, int] = {}  # key -> row id, until its outcome is written
        self._thread = threading.Thread(target=self._write_forever, name="command-log", daemon=True)
        self._thread.start()

    def record(
        self,
        command: RemovalCommand,
        outcome: Future[CommandOutcome] | CommandOutcome,
        detail: dict | None = None,
    ) -> None:
        """Log a command now (`sent`) and its outcome when the link reports it; a command that was
        never sent (late, dry run) is logged with its outcome at once. Never blocks."""
        key = next(self._keys)
        if isinstance(outcome, CommandOutcome):
            self._offer(_Entry(key, command, outcome, detail))
            return
        self._offer(_Entry(key, command, CommandOutcome.SENT, detail))
        outcome.add_done_callback(lambda done: self._offer(_Entry(key, None, done.result())))

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (waiting up to `timeout_s` for a locked database), then stop."""
        self._entries.put(None)  # wakes the writer; the queue may be full for a moment, so block
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            log.error("command log: %d entries not written before shutdown", self._entries.qsize())

    def _offer(self, entry: _Entry) -> None:
        try:
            self._entries.put_nowait(entry)
        except queue.Full:
            self.lost += 1
            if self.lost == 1:
                log.error("command log: queue full (database too slow?): entries are being lost")

    def _write_forever(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._entries.get()]
            while True:
                try:
                    batch.append(self._entries.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            entries = [entry for entry in batch if entry is not None]
            while entries:
                try:
                    self._write(entries)
                    break
                except OperationalError as error:  # locked or unreachable: keep the batch, try again
                    log.warning("command log: database busy, retrying: %s", error.orig)
                    time.sleep(RETRY_S)

    def _write(self, entries: list[_Entry]) -> None:
        row_ids = dict(self._row_ids)  # committed only with the transaction
        with self.store.session() as session:
            for entry in entries:
                if entry.command is not None:
                    command = entry.command
                    row = RemovalCommandRow(
                        object_id=command.object_id, sequence=command.sequence, fire_time_ns=command.fire_ns,
                        channels=list(command.channels), pulse_ms=command.pulse_ms,
                        capture_ns=command.capture_ns, status=entry.outcome.value, created_utc=utc_now(),
                        detail=entry.detail,
                    )  # fmt: skip
                    session.add(row)
                    session.flush()
                    row_ids[entry.key] = row.id
                elif entry.key in row_ids:
                    session.get(RemovalCommandRow, row_ids.pop(entry.key)).status = entry.outcome.value
        self._row_ids = row_ids
