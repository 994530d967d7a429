"""The ejection planner: when an object reaches the ejector line, and which nozzles cover it.

A command is planned from the newest report of its object (later reports are more accurate: the
tracker has seen more), and released to the transport only shortly before it must fire. What has
been released is final. A fire time that has already passed is never sent: it is counted as late,
with the margin by which it was missed.

With `spare_legal`, a pulse never fires a lane where a legal object reported by the tracker would be
in the air too: on a belt where objects touch, a pulse over an illegal object's extent otherwise
blows a third of the legal objects off with it (benchmarks/README.md, the `truth` rows). The lanes
clear of legal objects still fire; a command left with no lane is not sent and is handed over as
`spared`, so that it is on record like a late one. Where the tracker reports objects' outlines
(`BeltObject.outline`), lanes are judged by them, not by the boxes: a lane fires only where the
object reaches into it, over the object's own stretch in that lane (so one object may take several
commands, one per group of lanes with alike stretches), and a legal neighbour counts only where its
own outline is, kept `spare_clearance_mm` away from the air.
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
# lanes whose stretches of an object differ by at most this share one command: fewer frames on the
# wire, at the price of air over up to this much more belt at either end (checked against legal objects)
LANE_GROUP_TOLERANCE_MM = 10.0


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


def _union(windows: list[tuple[float, float]]) -> tuple[float, float]:
    return min(low for low, _ in windows), max(high for _, high in windows)


class EjectionPlanner:
    """Objects in, timed commands out. Not thread-safe: one tracker thread feeds it."""

    def __init__(
        self,
        bank: NozzleBank,
        lead_ms: float = 100.0,
        clock: Callable[[], int] = time.monotonic_ns,
        spare_legal: bool = False,
        spare_clearance_mm: float = 0.0,
    ) -> None:
        self.bank = bank
        self.lead_ns = round(lead_ms * 1e6)
        self.clock = clock
        self.spare_legal = spare_legal
        self.spare_clearance_mm = spare_clearance_mm
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
        channels = tuple(
            channel
            for channel in self.bank.channels_covering(obj.y_min_mm, obj.y_max_mm)
            if obj.lane_extent(*self.bank.lane(channel)) is not None
        )
        if not channels:
            self.stats.no_channel += 1
            return None
        fire_ns, pulse_ms = self._timing(obj, obj.x_min_mm, obj.x_max_mm)
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

    def _timing(self, obj: BeltObject, x_min_mm: float, x_max_mm: float) -> tuple[int, float]:
        """(fire_ns, pulse_ms) for air over [x_min, x_max] of the belt as `obj` saw it: the leading
        edge (x_max) meets the line first; the pulse lasts until the trailing edge has passed."""
        reach_ns = obj.seen_ns + round((self.bank.line_x_mm - x_max_mm) / (obj.speed_mm_s / 1e9))
        fire_ns = reach_ns - round(self.bank.valve_latency_ms * 1e6)
        return fire_ns, max((x_max_mm - x_min_mm) / obj.speed_mm_s * 1e3, self.bank.min_pulse_ms)

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

    def _shape(self, command: RemovalCommand, obj: BeltObject) -> list[RemovalCommand]:
        """The command as the pulses that fire it: each lane's air over the object's own stretch in
        that lane (its outline's, or its box's when the tracker has no outline), lanes where a legal
        object would be in that air taken off (`spare_legal`), and neighbouring lanes whose stretches
        differ by at most `LANE_GROUP_TOLERANCE_MM` sent as one command. An empty list when every
        lane was spared (the command goes on record as `spared`)."""
        min_pulse_mm = self.bank.min_pulse_ms / 1e3 * obj.speed_mm_s
        windows: dict[int, tuple[float, float]] = {}
        for channel in command.channels:
            extent = obj.lane_extent(*self.bank.lane(channel))
            if extent is None:  # plan() keeps only lanes the object reaches
                continue
            window = (min(extent[0], extent[1] - min_pulse_mm), extent[1])
            if not (self.spare_legal and self._legal_in_air(channel, *window, obj)):
                windows[channel] = window
        if not windows:
            self.stats.spared += 1
            self._spared.append(command)
            return []
        self.stats.lanes_spared += len(command.channels) - len(windows)
        groups: list[tuple[list[int], list[tuple[float, float]]]] = []
        for channel, window in windows.items():
            if groups and self._joins(groups[-1], channel, window, obj):
                groups[-1][0].append(channel)
                groups[-1][1].append(window)
            else:
                groups.append(([channel], [window]))
        shaped = []
        for index, (channels, group_windows) in enumerate(groups):
            low, high = _union(group_windows)
            fire_ns, pulse_ms = self._timing(obj, low, high)
            sequence = command.sequence if index == 0 else self._next_sequence()
            update = {
                "channels": tuple(channels),
                "fire_ns": fire_ns,
                "pulse_ms": pulse_ms,
                "sequence": sequence,
            }
            shaped.append(command.model_copy(update=update))
        return shaped

    def _joins(
        self,
        group: tuple[list[int], list[tuple[float, float]]],
        channel: int,
        window: tuple[float, float],
        obj: BeltObject,
    ) -> bool:
        """Whether `channel` can share the group's command: the next lane, a stretch close to each of
        the group's, and no legal object in the air the group's lanes would then share."""
        channels, windows = group
        if channel != channels[-1] + 1:
            return False
        low, high = _union([*windows, window])
        if any(abs(low - lo) > LANE_GROUP_TOLERANCE_MM or abs(high - hi) > LANE_GROUP_TOLERANCE_MM
               for lo, hi in [*windows, window]):  # fmt: skip
            return False
        return not (
            self.spare_legal and any(self._legal_in_air(c, low, high, obj) for c in [*channels, channel])
        )

    def _legal_in_air(self, channel: int, air_lo: float, air_hi: float, obj: BeltObject) -> bool:
        """Whether a legal object is in `channel`'s lane within [air_lo, air_hi] of the belt as `obj`
        saw it (each legal object moved on to the time of `obj`'s report)."""
        lane = self.bank.lane(channel)
        clearance = self.spare_clearance_mm
        for legal in self._legal.values():
            extent = legal.lane_extent(*lane)
            shift = obj.speed_mm_s * (obj.seen_ns - legal.seen_ns) / 1e9
            if (
                extent is not None
                and extent[1] + shift + clearance > air_lo
                and extent[0] + shift - clearance < air_hi
            ):
                return True
        return False

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

        A command whose lanes all lie in a later one's and whose pulse the later one starts within is
        stretched to cover it, and the later one keeps only its other lanes (`_merge_into`).
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
            for shaped in self._shape(command, report):
                released.extend(self._merge_into(released, shaped))
        return released

    def _merge_into(self, released: list[RemovalCommand], command: RemovalCommand) -> list[RemovalCommand]:
        """Fold `command` into an earlier released command it overlaps on a nozzle, where stretching
        that command gives air only to lanes `command` wants anyway: every lane of the earlier one is
        shared, and `command` starts within its pulse. Other overlaps go as they are: the device merges
        overlapping openings of one channel itself (PROTOCOL.md, Overlaps), and stretching a command
        over lanes of its own would blow air where the planner spared a legal object."""
        remaining = set(command.channels)
        for index, earlier in enumerate(released):
            shared = remaining & set(earlier.channels)
            if shared == set(earlier.channels) and earlier.fire_ns <= command.fire_ns <= earlier.end_ns:
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
