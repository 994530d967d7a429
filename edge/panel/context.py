"""What the agent hands the panel: the site, its store, and, when the panel runs inside the agent,
the live view and the actuator link. A panel started on its own has neither and says so."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.capture.live_view import LiveView
from edge.config import SiteConfig
from edge.store.command_log import CommandLog
from edge.store.frame_store import FrameStore


@dataclass
class PanelContext:
    config: SiteConfig
    store: FrameStore
    config_path: Path | None = None
    view: LiveView | None = None  # None: no agent in this process (`beltcam panel`)
    transport: Any = None  # the actuator link (LinkTransport or DryRunTransport) when the agent runs
    command_log: CommandLog | None = None
    judge: Callable[[], list[dict]] | None = None  # the simulated belt's verdicts on recent valve openings
    stopping: threading.Event = field(default_factory=threading.Event)  # ends live streams at shutdown
    # the agent's: stop cleanly and start again with the saved site file (None: no agent to restart)
    restart: Callable[[], None] | None = None

    @property
    def agent_running(self) -> bool:
        return self.view is not None
