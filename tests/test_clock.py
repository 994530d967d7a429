import numpy as np
import pytest

from edge.sources.clock import DeviceClock, monotonic_from_utc_ns, utc_from_monotonic


def _simulate(clock: DeviceClock, seconds: float, drift_ppm: float, seed: int = 0):
    """A camera at 30 fps whose clock runs `drift_ppm` fast and starts at an arbitrary origin; frames
    reach the host 5 ms after capture plus exponential jitter. Returns (true, estimated) times."""
    rng = np.random.default_rng(seed)
    true_ns = np.arange(0, seconds, 1 / 30) * 1e9 + 7e12
    device_ns = (true_ns - 7e12) * (1 + drift_ppm * 1e-6) + 123e9
    arrival_ns = true_ns + 5e6 + rng.exponential(3e6, true_ns.size)
    estimated = [clock.to_host(int(d), int(a)) for d, a in zip(device_ns, arrival_ns, strict=True)]
    return true_ns, np.array(estimated, dtype=float)


@pytest.mark.parametrize("drift_ppm", [100, -100])  # 60 ms in 10 minutes, either way
def test_capture_times_follow_a_drifting_camera_clock_without_the_transport_jitter(drift_ppm):
    true_ns, estimated = _simulate(DeviceClock(), seconds=600, drift_ppm=drift_ppm)
    error_ms = (estimated - true_ns) / 1e6 - 5.0  # the constant transport delay cannot be seen
    settled = error_ms[300:]  # after the first 10 s window
    assert np.abs(settled).max() < 2.0
    assert (np.diff(estimated) > 0).all()
    arrival_error_ms = 3.0  # what plain arrival times would scatter by (the jitter's mean)
    assert np.abs(settled).mean() < arrival_error_ms / 3


def test_a_camera_clock_that_restarts_is_taken_as_a_new_origin():
    clock = DeviceClock()
    first = clock.to_host(5_000_000_000, 1_000_000_000)
    clock.to_host(5_100_000_000, 1_100_000_000)
    after_restart = clock.to_host(0, 2_000_000_000)  # reconnect: the camera counts from zero again
    assert first == 1_000_000_000
    assert after_restart == 2_000_000_000


def test_wall_clock_and_monotonic_conversions_agree():
    now_utc = utc_from_monotonic(monotonic_from_utc_ns(1_790_000_000_000_000_000))
    assert abs(now_utc.timestamp() - 1_790_000_000) < 0.01


def test_a_camera_clock_not_running_at_real_speed_never_drifts_away_from_arrival():
    """Stamps that step 25 ms while frames come every 50 ms (a camera reporting the wrong rate)."""
    clock = DeviceClock()
    arrivals = [1_000_000_000 + n * 50_000_000 for n in range(600)]  # 30 s
    estimates = [clock.to_host(n * 25_000_000, arrival) for n, arrival in enumerate(arrivals)]
    lags_s = [(arrival - estimate) / 1e9 for arrival, estimate in zip(arrivals, estimates, strict=True)]
    assert min(lags_s) >= 0  # never captured after it arrived
    assert max(lags_s) <= 2.0  # re-anchored once the gap exceeds any transport delay
