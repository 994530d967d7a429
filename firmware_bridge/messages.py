"""The removal-command contract between the agent and the actuators.

In: `BeltObject`, what the belt tracker knows of one object at one monotonic instant. Out:
`RemovalCommand`, when to open which nozzles for how long. Times are `time.monotonic_ns()` of the
agent's host; positions are belt millimetres (x along travel, y across), as in DESIGN.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Message):
    """An object's extent along the belt within one band across it: a slice of its outline."""

    y_min_mm: float
    y_max_mm: float
    x_min_mm: float
    x_max_mm: float


class BeltObject(_Message):
    """One tracked object: its extent on the belt at `seen_ns`, and the belt speed then.

    `outline` slices the object into bands across the belt, so that the planner sees where it really
    is in each nozzle's lane: a tilted bottle fills a fraction of its box, and the box of a legal
    neighbour reaches into lanes and stretches of belt the bottle itself never touches. Empty when the
    tracker has not seen the whole object yet: the box stands for it.
    """

    object_id: int = Field(ge=0, lt=2**32)
    cls: Literal["illegal", "legal"]
    x_min_mm: float
    x_max_mm: float
    y_min_mm: float
    y_max_mm: float
    seen_ns: int = Field(description="monotonic time the extent refers to")
    speed_mm_s: float = Field(gt=0)
    capture_ns: int = Field(description="monotonic capture time of the frame it was seen in")
    outline: tuple[Band, ...] = ()

    def lane_extent(self, y_min_mm: float, y_max_mm: float) -> tuple[float, float] | None:
        """(x_min, x_max) of the object within [y_min, y_max] across the belt; None when it does not
        reach there. From the outline's bands when there are some, else from the box."""
        if not self.outline:
            if self.y_max_mm > y_min_mm and self.y_min_mm < y_max_mm:
                return self.x_min_mm, self.x_max_mm
            return None
        inside = [band for band in self.outline if band.y_max_mm > y_min_mm and band.y_min_mm < y_max_mm]
        if not inside:
            return None
        return min(band.x_min_mm for band in inside), max(band.x_max_mm for band in inside)

    @model_validator(mode="after")
    def _ordered(self) -> BeltObject:
        if self.x_min_mm > self.x_max_mm or self.y_min_mm > self.y_max_mm:
            raise ValueError("extent must have x_min <= x_max and y_min <= y_max")
        return self


class RemovalCommand(_Message):
    """Open `channels` at `fire_ns` for `pulse_ms`. `sequence` orders commands on one link."""

    object_id: int = Field(ge=0, lt=2**32)
    sequence: int = Field(ge=0)
    fire_ns: int = Field(description="monotonic time the valves must open (valve latency already taken off)")
    channels: tuple[int, ...] = Field(min_length=1)
    pulse_ms: float = Field(gt=0)
    capture_ns: int = Field(description="capture time of the frame the object was seen in (latency budget)")

    @property
    def end_ns(self) -> int:
        return self.fire_ns + round(self.pulse_ms * 1e6)


class CommandOutcome(StrEnum):
    """What became of a command; stored in `removal_commands.status`."""

    PLANNED = "planned"
    SENT = "sent"
    ACKED = "acked"
    LATE = "late"  # its fire time had passed before it could be sent
    DROPPED = "dropped"  # its deadline passed while the link was down, or the device refused it
    DRY_RUN = "dry_run"
    SPARED = "spared"  # not sent: each of its lanes would have hit a legal object too (spare_legal)


class LinkStatus(_Message):
    """The transport's health, for the panel and `beltcam bridge status`."""

    transport: str
    connected: bool
    alarm: str | None = None  # why the link is considered down
    last_heartbeat_ack_ns: int | None = None
    one_way_ms: float | None = None  # measured: taken off every command's delay
    sent: int = 0
    acked: int = 0
    retransmits: int = 0
    naks: int = 0
    dropped: int = 0  # never sent: the deadline passed while the link was down
    unconfirmed: int = 0  # acknowledged, but the fire time fell in an outage: may not have fired
