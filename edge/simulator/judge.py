"""Judging every valve opening against the simulated belt's ground truth: did the air hit the
illegal object it was meant for, a legal one next to it, or nothing? Only a simulator can know."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edge.simulator.world import BeltObject, BeltWorld
from firmware_bridge.messages import BeltObject as TrackedObject
from firmware_bridge.planner import NozzleBank
from firmware_bridge.valve_device import ValveOpening


@dataclass(frozen=True)
class Judgement:
    opening: ValveOpening
    verdict: str  # "illegal" (meant), "legal" (collateral: a legal object was hit too), "nothing"
    hit_ids: tuple[int, ...]


def _box(obj: BeltObject, belt_offset_mm: float) -> tuple[float, float, float, float]:
    x = obj.x_at(belt_offset_mm)
    outline = obj.outline_mm
    return (
        x + outline[:, 0].min(),
        obj.y_mm + outline[:, 1].min(),
        x + outline[:, 0].max(),
        obj.y_mm + outline[:, 1].max(),
    )


def _clip(polygon: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """Sutherland-Hodgman: the part of `polygon` on one side of the line `coordinate[axis] = bound`."""
    if len(polygon) == 0:
        return polygon
    side = polygon[:, axis] - bound
    inside = side <= 0 if keep_below else side >= 0
    following = np.roll(polygon, -1, axis=0)
    following_side = np.roll(side, -1)
    crosses = inside != np.roll(inside, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(crosses, side / (side - following_side), 0.0)
    crossing = polygon + fraction[:, None] * (following - polygon)
    points = np.stack([polygon, crossing], axis=1)  # each vertex, then where its edge crosses
    keep = np.stack([inside, crosses], axis=1)
    return points[keep]


def outline_meets_rectangle(outline: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> bool:
    """Whether the polygon `outline` and the rectangle [x0, x1] x [y0, y1] share an area: the polygon
    clipped to the rectangle has one."""
    clipped = outline
    for axis, bound, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        clipped = _clip(clipped, axis, bound, keep_below)
    if len(clipped) < 3:
        return False
    x, y = clipped[:, 0], clipped[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2 > 1e-6


def judge_openings(
    openings: list[ValveOpening], bank: NozzleBank, world: BeltWorld, epoch_ns: int
) -> list[Judgement]:
    """`epoch_ns` is the monotonic time of the simulator's t = 0; the air reaches the belt one valve
    latency after the valve is commanded open, and stops one latency after it is commanded shut.

    The air hits what it meets of an object's own outline, not of the box around it: a nozzle's lane
    crossing the empty corner of a tilted bottle's box blows on the belt. While the valve is open
    the belt carries each object a stretch past the line (the belt only moves forward), so in the
    object's own frame the air sweeps a rectangle: that stretch along the belt by the lane across it.
    """
    latency_s = bank.valve_latency_ms / 1e3
    margin = world.config.object_size_mm[1]
    judgements = []
    for opening in openings:
        lane_lo, lane_hi = bank.lane(opening.channel)
        first = world.belt_offset_mm((opening.open_ns - epoch_ns) / 1e9 + latency_s)
        last = world.belt_offset_mm((opening.close_ns - epoch_ns) / 1e9 + latency_s)
        candidates = world.objects_between(first - bank.line_x_mm - margin, last - bank.line_x_mm + margin)
        hits = [
            obj
            for obj in candidates
            if outline_meets_rectangle(
                obj.outline_mm,
                bank.line_x_mm - obj.x_at(last),
                bank.line_x_mm - obj.x_at(first),
                lane_lo - obj.y_mm,
                lane_hi - obj.y_mm,
            )
        ]
        classes = {obj.cls for obj in hits}
        verdict = "legal" if "legal" in classes else "illegal" if classes else "nothing"
        judgements.append(Judgement(opening, verdict, tuple(sorted(obj.object_id for obj in hits))))
    return judgements


def summarize(judgements: list[Judgement]) -> dict[str, int]:
    return dict(Counter(j.verdict for j in judgements))


def perfect_tracking(
    world: BeltWorld, view_x_range_mm: tuple[float, float], t_s: float, epoch_ns: int
) -> Iterator[TrackedObject]:
    """What an ideal tracker would report at t_s: every object in C1's view, exact extent and speed.
    The reference for judging the bridge alone, before a real tracker exists."""
    offset = world.belt_offset_mm(t_s)
    margin = world.config.object_size_mm[1]
    low, high = view_x_range_mm
    seen_ns = epoch_ns + round(t_s * 1e9)
    for obj in world.objects_between(offset - high - margin, offset - low + margin):
        x0, y0, x1, y1 = _box(obj, offset)
        if x1 < low or x0 > high:
            continue
        yield TrackedObject(
            object_id=obj.object_id % 2**32, cls=obj.cls, x_min_mm=x0, x_max_mm=x1, y_min_mm=y0, y_max_mm=y1,
            seen_ns=seen_ns, speed_mm_s=world.speed_mm_s(t_s), capture_ns=seen_ns,
        )  # fmt: skip


def passed_objects(world: BeltWorld, line_x_mm: float, t0_s: float, t1_s: float) -> list[BeltObject]:
    """Objects the live path could have removed between `t0_s` and `t1_s`: not yet in C1's view
    (x < 0) at t0, wholly past the ejector line at t1."""
    start, end = world.belt_offset_mm(t0_s), world.belt_offset_mm(t1_s)
    margin = world.config.object_size_mm[1]
    passed = []
    for obj in world.objects_between(start - margin, end - line_x_mm + margin):
        outline_x = obj.outline_mm[:, 0]
        if obj.x_at(start) + outline_x.max() < 0 and obj.x_at(end) + outline_x.min() > line_x_mm:
            passed.append(obj)
    return passed


def removal_scores(
    judgements: list[Judgement], world: BeltWorld, line_x_mm: float, t0_s: float, t1_s: float
) -> dict[str, float | int | None]:
    """`recall`: the share of illegal objects that passed the line and were hit; `false_ejections`:
    the share of legal ones that were hit (None when none passed)."""
    hit = {object_id for judgement in judgements for object_id in judgement.hit_ids}
    scores = hit_scores(hit, world, line_x_mm, t0_s, t1_s)
    scores["openings_hitting_nothing"] = sum(j.verdict == "nothing" for j in judgements)
    return scores


def hit_scores(
    hit_ids: set[int], world: BeltWorld, line_x_mm: float, t0_s: float, t1_s: float
) -> dict[str, float | int | None]:
    """`removal_scores` of the objects known to be hit (`hit_ids`): for a caller that judges its
    openings as they come (the agent's running scoreboard)."""
    scores: dict[str, float | int | None] = {}
    passed = passed_objects(world, line_x_mm, t0_s, t1_s)
    for cls, name in (("illegal", "recall"), ("legal", "false_ejections")):
        ids = {obj.object_id for obj in passed if obj.cls == cls}
        scores[f"{cls}_passed"] = len(ids)
        scores[name] = round(len(ids & hit_ids) / len(ids), 4) if ids else None
    return scores


def recent_verdicts(
    openings: list[ValveOpening], bank: NozzleBank, world: BeltWorld, epoch_ns: int, now_ns: int, count: int
) -> list[dict]:
    """The newest `count` valve openings whose air has reached the belt, each with the ground
    truth's verdict: what the panel shows beside the command log on the simulated belt."""
    latency_ns = int(bank.valve_latency_ms * 1e6)
    done = sorted((o for o in openings if o.close_ns + latency_ns <= now_ns), key=lambda o: o.open_ns)
    return [
        {
            "channel": judgement.opening.channel,
            "object_id": judgement.opening.object_id,
            "seconds_ago": round((now_ns - judgement.opening.open_ns) / 1e9, 1),
            "verdict": judgement.verdict,
        }
        for judgement in reversed(judge_openings(done[-count:], bank, world, epoch_ns))
    ]
