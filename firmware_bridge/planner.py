"""The ejection planner: when an object reaches the ejector line, and which nozzles cover it.

A command is planned from the newest report of its object (later reports are more accurate: the
tracker has seen more), and released to the transport only shortly before it must fire. What has
been released is final. A fire time that has already passed is never sent: it is counted as late,
with the margin by which it was missed.

With `spare_legal`, a pulse never fires a lane where a legal object reported by the tracker would be
in the air too: on a belt where objects touch, a pulse over an illegal object's extent otherwise
blows a third of the legal objects off with it (benchmarks/README.md, the `truth` rows). The lanes
clear of legal objects still fire; a command left with no lane is not sent and is handed over as
`spared`, so that it is on record like a late one.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from firmware_bridge.messages import BeltObject, RemovalCommand

MAX_NOZZLES = 64  # one command's channel mask is 64 bits (PROTOCOL.md)
REMEMBERED_OBJECTS = 4096  # released objects kept to refuse a second command; far more than a belt holds
KEPT_MARGINS = 10_000


class NozzleBank(BaseModel):
    """The ejector: a line of nozzles across the belt at `line_x_mm`, as calibrated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line_x_mm: float
    nozzle_count: int = Field(ge=1, le=MAX_NOZZLES, description="what fits one command's channel mask")
    pitch_mm: float = Field(gt=0)
    first_nozzle_y_mm: float
    valve_latency_ms: float = Field(ge=0)
    min_pulse_ms: float = Field(gt=0)

    def lane(self, channel: int) -> tuple[float, float]:
        """The stretch across the belt (y_min, y_max mm) a nozzle reaches: its centre +/- half a pitch."""
        centre = self.first_nozzle_y_mm + channel * self.pitch_mm
        return centre - self.pitch_mm / 2, centre + self.pitch_mm / 2

    def channels_covering(self, y_min_mm: float, y_max_mm: float) -> tuple[int, ...]:
        """Nozzles whose lane (centre +/- half a pitch) overlaps [y_min, y_max]."""
        first = self.first_nozzle_y_mm - self.pitch_mm / 2
        low = int((y_min_mm - first) // self.pitch_mm)
        high = int(-((first - y_max_mm) // self.pitch_mm)) - 1  # ceil, then the lane before it
        return tuple(range(max(low, 0), min(high, self.nozzle_count - 1) + 1))


@dataclass
class PlannerStats:
    planned: int = 0
    merged_reports: int = 0
    late: int = 0
    late_margins_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_MARGINS))
    no_channel: int = 0
    withdrawn: int = 0  # pending commands dropped because their object was reported legal
    spared: int = 0  # commands not sent: each of their lanes would have hit a legal object too
    lanes_spared: int = 0  # lanes taken off commands that still fired


class EjectionPlanner:
    """Objects in, timed commands out. Not thread-safe: one tracker thread feeds it."""

    def __init__(
        self,
        bank: NozzleBank,
        lead_ms: float = 100.0,
        clock: Callable[[], int] = time.monotonic_ns,
        spare_legal: bool = False,
    ) -> None:
        self.bank = bank
        self.lead_ns = round(lead_ms * 1e6)
        self.clock = clock
        self.spare_legal = spare_legal
        self.stats = PlannerStats()
        self._pending: dict[int, RemovalCommand] = {}
        self._reports: dict[int, BeltObject] = {}  # the report each pending command was planned from
        self._legal: OrderedDict[int, BeltObject] = OrderedDict()  # newest report of each legal object
        self._released: OrderedDict[int, None] = OrderedDict()  # bounded: the agent runs for months
        self._late: list[RemovalCommand] = []
        self._spared: list[RemovalCommand] = []
        self._sequence = 0

    def plan(self, obj: BeltObject) -> RemovalCommand | None:
        """The command for this report of the object; replaces any pending one for it. None for
        legal objects, objects outside the nozzle bank, objects already released, or late ones. An
        object now reported legal loses its pending command (the tracker changed its mind in time)."""
        if obj.object_id in self._released:
            return None
        if obj.cls != "illegal":
            self._remember_legal(obj)
            self._reports.pop(obj.object_id, None)
            if self._pending.pop(obj.object_id, None) is not None:
                self.stats.withdrawn += 1
            return None
        self._legal.pop(obj.object_id, None)
        channels = self.bank.channels_covering(obj.y_min_mm, obj.y_max_mm)
        if not channels:
            self.stats.no_channel += 1
            return None
        speed_mm_ns = obj.speed_mm_s / 1e9
        # the leading edge (x_max) meets the line first; the pulse lasts until the trailing edge has passed
        reach_ns = obj.seen_ns + round((self.bank.line_x_mm - obj.x_max_mm) / speed_mm_ns)
        fire_ns = reach_ns - round(self.bank.valve_latency_ms * 1e6)
        pulse_ms = max((obj.x_max_mm - obj.x_min_mm) / obj.speed_mm_s * 1e3, self.bank.min_pulse_ms)
        previous = self._pending.get(obj.object_id)
        command = RemovalCommand(
            object_id=obj.object_id,
            sequence=previous.sequence if previous else self._next_sequence(),
            fire_ns=fire_ns,
            channels=channels,
            pulse_ms=pulse_ms,
            capture_ns=obj.capture_ns,
        )
        now = self.clock()
        if fire_ns <= now:
            self._count_late(command, now - fire_ns)
            return None
        if previous is not None:
            self.stats.merged_reports += 1
        else:
            self.stats.planned += 1
        self._pending[obj.object_id] = command
        self._reports[obj.object_id] = obj
        return command

    def _remember_legal(self, obj: BeltObject) -> None:
        if not self.spare_legal:
            return
        self._legal[obj.object_id] = obj
        self._legal.move_to_end(obj.object_id)
        if len(self._legal) > REMEMBERED_OBJECTS:
            self._legal.popitem(last=False)

    def take_spared(self) -> list[RemovalCommand]:
        """The commands not sent since the last call because every lane would have hit a legal object
        too (`spare_legal`): for the command log, like the late ones."""
        spared, self._spared = self._spared, []
        return spared

    def _spare(self, command: RemovalCommand, obj: BeltObject) -> RemovalCommand | None:
        """The command without the lanes where a legal object is in the pulse's stretch of belt (both
        moved to the time of `obj`'s report: the belt carries them alike); None when no lane is left."""
        pulse_mm = command.pulse_ms / 1e3 * obj.speed_mm_s
        air_lo, air_hi = obj.x_max_mm - pulse_mm, obj.x_max_mm  # the belt the air meets, in obj's frame
        clear = []
        for channel in command.channels:
            lane_lo, lane_hi = self.bank.lane(channel)
            if not any(
                legal.y_max_mm > lane_lo
                and legal.y_min_mm < lane_hi
                and legal.x_max_mm + (shift := obj.speed_mm_s * (obj.seen_ns - legal.seen_ns) / 1e9) > air_lo
                and legal.x_min_mm + shift < air_hi
                for legal in self._legal.values()
            ):
                clear.append(channel)
        if not clear:
            self.stats.spared += 1
            self._spared.append(command)
            return None
        self.stats.lanes_spared += len(command.channels) - len(clear)
        return (
            command
            if len(clear) == len(command.channels)
            else command.model_copy(update={"channels": tuple(clear)})
        )

    def _forget_passed_legal(self, now_ns: int) -> None:
        """Legal objects wholly past the ejector line can no longer be hit."""
        for object_id, legal in list(self._legal.items()):
            if legal.x_min_mm + legal.speed_mm_s * (now_ns - legal.seen_ns) / 1e9 > self.bank.line_x_mm:
                del self._legal[object_id]

    def take_late(self) -> list[RemovalCommand]:
        """The commands found late since the last call (never sent): for the command log, so that an
        object the belt carried past in time for nothing is on record, not just counted."""
        late, self._late = self._late, []
        return late

    def due(self) -> list[RemovalCommand]:
        """Pending commands whose fire time is within the lead time: final, hand them to the link.

        Pulses that would overlap on a nozzle are merged: the earlier command is stretched to cover
        the later one's pulse on the shared nozzles, and the later one keeps only the others.
        """
        now = self.clock()
        ready = sorted(
            (c for c in self._pending.values() if c.fire_ns - now <= self.lead_ns), key=lambda c: c.fire_ns
        )
        released: list[RemovalCommand] = []
        if self.spare_legal:
            self._forget_passed_legal(now)
        for command in ready:
            del self._pending[command.object_id]
            report = self._reports.pop(command.object_id)
            self._release(command.object_id)
            if command.fire_ns <= now:
                self._count_late(command, now - command.fire_ns)
                continue
            if self.spare_legal and (command := self._spare(command, report)) is None:
                continue
            released.extend(self._merge_into(released, command))
        return released

    def _merge_into(self, released: list[RemovalCommand], command: RemovalCommand) -> list[RemovalCommand]:
        remaining = set(command.channels)
        for index, earlier in enumerate(released):
            shared = remaining & set(earlier.channels)
            if shared and command.fire_ns <= earlier.end_ns:
                stretched_ms = max(earlier.end_ns, command.end_ns) - earlier.fire_ns
                released[index] = earlier.model_copy(update={"pulse_ms": stretched_ms / 1e6})
                remaining -= shared
                self.stats.merged_reports += 1
        if not remaining:
            return []
        return [command.model_copy(update={"channels": tuple(sorted(remaining))})]

    @property
    def pending(self) -> int:
        """Commands planned and not yet released."""
        return len(self._pending)

    def _release(self, object_id: int) -> None:
        self._released[object_id] = None
        if len(self._released) > REMEMBERED_OBJECTS:
            self._released.popitem(last=False)

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _count_late(self, command: RemovalCommand, margin_ns: int) -> None:
        self._pending.pop(command.object_id, None)
        self._reports.pop(command.object_id, None)
        self._release(command.object_id)
        self._late.append(command)
        self.stats.late += 1
        self.stats.late_margins_ms.append(margin_ns / 1e6)
