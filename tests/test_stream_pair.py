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
    pairing.add("c1", 2, 100 * MS)
    assert pairing.add("c2", 101, 100 * MS) == (2, 101)
    assert pairing.stats.unpaired == {"c1": 1, "c2": 0}


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
