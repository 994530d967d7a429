from edge.capture.stream_pair import StreamPair

MS = 1_000_000


def test_pairs_nearest_frames_within_tolerance():
    pairing = StreamPair(tolerance_ns=20 * MS)
    assert pairing.add("c1", 1, 0) is None
    assert pairing.add("c2", 101, 5 * MS) == (1, 101)
    assert pairing.add("c2", 102, 100 * MS) is None
    assert pairing.add("c1", 2, 90 * MS) == (2, 102)
    assert pairing.stats.paired == 2


def test_frames_the_other_camera_has_overtaken_count_as_unpaired():
    pairing = StreamPair(tolerance_ns=10 * MS)
    pairing.add("c1", 1, 0)
    assert pairing.add("c2", 101, 0) == (1, 101)
    pairing.add("c1", 2, 100 * MS)  # C2 dropped its frame of this moment
    pairing.add("c1", 3, 200 * MS)
    assert pairing.add("c2", 103, 200 * MS) == (3, 103)
    assert pairing.stats.unpaired == {"c1": 1, "c2": 0}


def test_belt_the_other_camera_never_recorded_is_outside_not_unpaired_and_counts_add_up():
    """C2 sees the belt 3 s after C1: its first 3 s show belt C1 saw before the recording began, and
    C1's last 3 s are belt C2 had not reached when it ended. Neither is a miss."""
    pairing = StreamPair(tolerance_ns=10 * MS, belt_lag_ns=3000 * MS)
    offered = {"c1": 0, "c2": 0}
    for tick in range(100):  # 10 s at 10 fps, both cameras
        for camera in ("c1", "c2"):
            pairing.add(camera, (camera, tick), tick * 100 * MS)
            offered[camera] += 1
    pairing.finish()
    stats = pairing.stats
    assert stats.unpaired == {"c1": 0, "c2": 0}
    assert stats.outside == {"c1": 30, "c2": 30}
    assert stats.paired == 70
    for camera in ("c1", "c2"):
        assert stats.paired + stats.unpaired[camera] + stats.outside[camera] == offered[camera]


def test_c2_clock_offset_is_removed_before_matching():
    pairing = StreamPair(tolerance_ns=10 * MS, c2_clock_offset_ns=500 * MS)
    pairing.add("c1", 1, 1000 * MS)
    assert pairing.add("c2", 101, 1000 * MS) is None  # same raw stamp, but C2's clock runs 0.5 s ahead
    assert pairing.add("c2", 102, 1502 * MS) == (1, 102)


def test_calibrated_belt_travel_pairs_the_same_stretch_of_belt():
    pairing = StreamPair(tolerance_ns=10 * MS, belt_lag_ns=3000 * MS)
    pairing.add("c1", 1, 1000 * MS)
    assert pairing.add("c2", 101, 1000 * MS) is None  # the same instant shows different belt
    assert pairing.add("c2", 102, 4003 * MS) == (1, 102)  # three seconds later it is the same belt
