"""Following the registry: when the store's live model changes (a promotion, a rollback), the new
file is loaded and offered to the live path. A file that was refused is tried again only when it
changes on disk, so a bad model is reported once, not every few seconds."""

from __future__ import annotations

import threading

from edge.live.path import LivePath
from edge.store.frame_store import FrameStore
from edge.store.registry import live_model


class ModelWatcher:
    def __init__(self, store: FrameStore, live: LivePath, period_s: float) -> None:
        self.store = store
        self.live = live
        self.period_s = period_s
        self._tried: tuple[int, str, float] | None = None  # model id, path, mtime

    def check(self) -> None:
        found = live_model(self.store)
        if found is None:
            return
        model_id, path = found
        mtime = path.stat().st_mtime if path.exists() else 0.0
        key = (model_id, str(path), mtime)
        if key != self._tried:
            self._tried = key
            self.live.offer_model(path)

    def run(self, stop: threading.Event) -> None:
        self.check()
        while not stop.wait(self.period_s):
            self.check()
