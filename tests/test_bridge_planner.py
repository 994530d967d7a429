"""Ejection planning on hand-computed cases, to the millisecond."""

from __future__ import annotations

import pytest

from firmware_bridge.messages import Band, BeltObject
from firmware_bridge.planner import EjectionPlanner, NozzleBank

MS = 1_000_000
BANK = NozzleBank(
    line_x_mm=1500.0, nozzle_count=24, pitch_mm=25.0, first_nozzle_y_mm=12.5, valve_latency_ms=12.0,
    min_pulse_ms=8.0,
)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _object(object_id=1, x=(900.0, 1000.0), y=(60.0, 110.0), seen_ms=0, speed=250.0, cls="illegal"):
    return BeltObject(
        object_id=object_id, cls=cls, x_min_mm=x[0], x_max_mm=x[1], y_min_mm=y[0], y_max_mm=y[1],
        seen_ns=seen_ms * MS, speed_mm_s=speed, capture_ns=seen_ms * MS - 40 * MS,
    )  # fmt: skip


def test_fire_time_pulse_and_channels_hand_computed():
    clock = Clock()
    planner = EjectionPlanner(BANK, clock=clock)
    command = planner.plan(_object())
    # leading edge 1000 mm, line 1500 mm: 500 mm at 250 mm/s = 2000 ms, minus 12 ms valve latency
    assert command.fire_ns == 1988 * MS
    assert command.pulse_ms == pytest.approx(400.0)  # 100 mm long at 250 mm/s
    assert command.channels == (2, 3, 4)  # lanes 50-75, 75-100, 100-125 mm overlap 60-110 mm
    assert command.capture_ns == -40 * MS
    short = planner.plan(_object(object_id=2, x=(999.0, 1000.0)))
    assert short.pulse_ms == 8.0  # never shorter than the valve can do


def test_channels_at_the_edges_of_the_bank():
    assert BANK.lane(0) == (0.0, 25.0) and BANK.lane(2) == (50.0, 75.0)
    assert BANK.channels_covering(0.0, 0.1) == (0,)
    assert BANK.channels_covering(25.0, 25.0) == ()  # a zero-width span on a lane border needs no air
    assert BANK.channels_covering(-50.0, 700.0) == tuple(range(24))
    assert BANK.channels_covering(601.0, 650.0) == ()  # beyond the last nozzle


def test_repeated_reports_merge_and_legal_objects_are_ignored():
    clock = Clock()
    planner = EjectionPlanner(BANK, clock=clock)
    first = planner.plan(_object())
    clock.now = 500 * MS
    second = planner.plan(_object(x=(1020.0, 1126.0), seen_ms=500))  # seen again, further on
    assert second.sequence == first.sequence and second.fire_ns == 1984 * MS  # 374 mm / 0.25 - 12
    assert planner.plan(_object(object_id=9, cls="legal")) is None
    assert planner.stats.merged_reports == 1 and planner.stats.planned == 1


def test_release_only_within_the_lead_time_and_never_late():
    clock = Clock()
    planner = EjectionPlanner(BANK, lead_ms=100.0, clock=clock)
    planner.plan(_object())
    clock.now = 1887 * MS
    assert planner.due() == []
    clock.now = 1888 * MS
    (released,) = planner.due()
    assert released.fire_ns == 1988 * MS
    assert planner.plan(_object(seen_ms=1888, x=(1372.0, 1472.0))) is None  # released commands are final
    clock.now = 3000 * MS
    assert planner.plan(_object(object_id=5, x=(1400.0, 1500.0), seen_ms=2990)) is None
    assert planner.stats.late == 1 and list(planner.stats.late_margins_ms) == [pytest.approx(22.0)]
    (late,) = planner.take_late()  # on record for the command log, once
    assert late.object_id == 5 and late.fire_ns == 2978 * MS and planner.take_late() == []


def test_an_object_reported_legal_before_release_loses_its_command():
    clock = Clock()
    planner = EjectionPlanner(BANK, lead_ms=100.0, clock=clock)
    planner.plan(_object())
    clock.now = 300 * MS
    assert planner.plan(_object(cls="legal", seen_ms=300, x=(975.0, 1075.0))) is None
    assert planner.stats.withdrawn == 1
    clock.now = 1900 * MS
    assert planner.due() == []  # nothing fires for it
    again = planner.plan(_object(seen_ms=1900, x=(1375.0, 1475.0)))  # illegal again, still in time
    assert again is not None and again.fire_ns == 1988 * MS


def test_overlapping_pulses_merge_only_where_no_lane_gets_more_air():
    clock = Clock()
    planner = EjectionPlanner(BANK, lead_ms=5000.0, clock=clock)
    planner.plan(_object(object_id=1, x=(900.0, 1000.0), y=(60.0, 110.0)))  # fires 1988 ms for 400 ms
    planner.plan(_object(object_id=2, x=(850.0, 950.0), y=(100.0, 140.0)))  # fires 2188 ms, lanes 4, 5
    planner.plan(_object(object_id=3, x=(600.0, 700.0), y=(105.0, 120.0)))  # fires 3188 ms, lane 4
    planner.plan(_object(object_id=4, x=(560.0, 690.0), y=(100.0, 145.0)))  # fires 3228 ms, lanes 4, 5
    first, second, third, fourth = planner.due()
    # stretching object 1's pulse over lanes 2 and 3 would blow air where object 2 never is: both go,
    # and the device merges their openings on nozzle 4
    assert (first.channels, first.pulse_ms) == ((2, 3, 4), pytest.approx(400.0))
    assert (second.channels, second.pulse_ms) == ((4, 5), pytest.approx(400.0))
    # object 3's only lane is object 4's too: its pulse is stretched to 3188 .. 3748 ms, object 4 keeps lane 5
    assert (third.object_id, third.channels, third.pulse_ms) == (3, (4,), pytest.approx(560.0))
    assert (fourth.object_id, fourth.channels) == (4, (5,))


def test_spare_legal_fires_only_the_lanes_clear_of_legal_objects():
    clock = Clock()
    planner = EjectionPlanner(BANK, clock=clock, spare_legal=True)
    # a legal object touching the illegal one on its right side (lanes 4 and 5, 100-150 mm), same stretch
    assert planner.plan(_object(object_id=5, x=(930.0, 990.0), y=(105.0, 140.0), cls="legal")) is None
    planner.plan(_object())  # lanes 2, 3, 4 (60-110 mm)
    planner.plan(_object(object_id=2, y=(110.0, 145.0)))  # wholly in the legal object's lanes
    planner.plan(_object(object_id=3, x=(500.0, 600.0), y=(105.0, 140.0)))  # same lanes, 330 mm behind
    clock.now = 1950 * MS
    released = {command.object_id: command for command in planner.due()}
    clock.now = 3550 * MS  # object 3 fires at 3588 ms
    released |= {command.object_id: command for command in planner.due()}
    assert released[1].channels == (2, 3)  # lane 4 would have blown the legal object off too
    assert 2 not in released and [c.object_id for c in planner.take_spared()] == [2]
    assert released[3].channels == (4, 5)  # its air meets the belt behind the legal object
    assert (planner.stats.spared, planner.stats.lanes_spared) == (1, 1)
    allowing = EjectionPlanner(BANK, clock=Clock())
    allowing.plan(_object(object_id=5, x=(930.0, 990.0), y=(105.0, 140.0), cls="legal"))
    assert allowing.plan(_object()).channels == (2, 3, 4)
    allowing.clock.now = 1950 * MS
    assert [c.channels for c in allowing.due()] == [(2, 3, 4)] and allowing.take_spared() == []


def _outlined(object_id=1, bands=(), box=(900.0, 1000.0, 60.0, 130.0), cls="illegal", seen_ms=0):
    """An object whose outline is given as (y_min, y_max, x_min, x_max) bands."""
    x0, x1, y0, y1 = box
    return _object(object_id, (x0, x1), (y0, y1), seen_ms, cls=cls).model_copy(
        update={
            "outline": tuple(Band(y_min_mm=a, y_max_mm=b, x_min_mm=c, x_max_mm=d) for a, b, c, d in bands)
        }
    )


def test_lane_extent_follows_the_outline_and_falls_back_to_the_box():
    boxed = _object(x=(900.0, 1000.0), y=(60.0, 110.0))
    assert boxed.lane_extent(50.0, 75.0) == (900.0, 1000.0) and boxed.lane_extent(110.0, 135.0) is None
    bottle = _outlined(bands=[(60.0, 75.0, 900.0, 1000.0), (75.0, 100.0, 930.0, 960.0)])
    assert bottle.lane_extent(50.0, 75.0) == (900.0, 1000.0)
    assert bottle.lane_extent(80.0, 90.0) == (930.0, 960.0)
    assert bottle.lane_extent(70.0, 80.0) == (900.0, 1000.0)  # both bands reach into it
    assert bottle.lane_extent(100.0, 125.0) is None  # inside the box, beyond the outline


def test_each_lane_fires_over_the_objects_own_stretch_in_that_lane():
    clock = Clock()
    planner = EjectionPlanner(BANK, clock=clock)
    # lanes 2 and 3 (50-100 mm) hold 900-1000 and 905-995 (within the 10 mm tolerance: one command);
    # lane 4 (100-125) holds 900-960; lane 5 (125-150) is in the box (to 130 mm) but not in the outline
    bands = [(60.0, 75.0, 900.0, 1000.0), (75.0, 100.0, 905.0, 995.0), (100.0, 125.0, 900.0, 960.0)]
    planned = planner.plan(_outlined(bands=bands))
    assert planned.channels == (2, 3, 4)
    clock.now = 1950 * MS
    front, back = planner.due()
    assert front.channels == (2, 3) and front.fire_ns == 1988 * MS and front.pulse_ms == pytest.approx(400.0)
    # lane 4's stretch ends 40 mm earlier (160 ms later at 250 mm/s) and is 60 mm long (240 ms)
    assert back.channels == (4,) and back.fire_ns == 2148 * MS and back.pulse_ms == pytest.approx(240.0)
    assert front.object_id == back.object_id == 1 and front.sequence == planned.sequence != back.sequence


def test_a_legal_neighbour_counts_where_its_outline_is_and_air_keeps_clear_of_it():
    def lanes_fired(clearance_mm: float, legal_bands) -> list[tuple[int, ...]]:
        clock = Clock()
        planner = EjectionPlanner(BANK, clock=clock, spare_legal=True, spare_clearance_mm=clearance_mm)
        planner.plan(_outlined(object_id=5, bands=legal_bands, box=(850.0, 1050.0, 50.0, 100.0), cls="legal"))
        planner.plan(_object(x=(900.0, 1000.0), y=(55.0, 95.0)))  # lanes 2 (50-75) and 3 (75-100)
        clock.now = 1950 * MS
        return [command.channels for command in planner.due()]

    # the legal box covers both lanes and the whole stretch, but its outline is in lane 3 only
    assert lanes_fired(0.0, [(80.0, 100.0, 1003.0, 1050.0)]) == [(2, 3)]  # 3 mm ahead of the air
    assert lanes_fired(5.0, [(80.0, 100.0, 1003.0, 1050.0)]) == [(2,)]  # within the clearance
    assert lanes_fired(5.0, [(80.0, 100.0, 1010.0, 1050.0)]) == [(2, 3)]
    assert lanes_fired(0.0, []) == []  # no outline: its box is in the air of both lanes
