"""RealSense recordings written by pyrealsense2's own software device and recorder: what a real
camera would have written, for tests and for turning other footage into a camera that plays back.

Current SDKs write rosbag2, so the file name must end in `.db3`. Depth, when given, comes from a
depth sensor placed `depth_to_colour_m` away from the colour sensor (the extrinsics a D4xx stores),
so playback must align it to colour as with a real device.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.sources.realsense_source import load_pyrealsense

HAND_OVER_S = 0.01  # the software sensor's queue drops frames pushed faster than it drains


def _video_stream(rs, kind, uid: int, size: tuple[int, int], fps: float, fmt, bpp: int):
    width, height = size
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.fx = intrinsics.fy = float(width)
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    intrinsics.model = rs.distortion.none
    intrinsics.coeffs = [0.0] * 5
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = kind, 0, uid
    stream.width, stream.height, stream.fps, stream.bpp = width, height, round(fps), bpp
    stream.fmt, stream.intrinsics = fmt, intrinsics
    return stream


def _push(rs, sensor, profile, pixels: np.ndarray, bpp: int, number: int, time_ms: float) -> None:
    frame = rs.software_video_frame()
    frame.pixels = np.ascontiguousarray(pixels)
    frame.bpp, frame.stride = bpp, pixels.shape[1] * bpp
    frame.timestamp, frame.domain = time_ms, rs.timestamp_domain.hardware_clock
    frame.frame_number, frame.profile = number, profile.as_video_stream_profile()
    if bpp == 2:
        frame.depth_units = 0.001
    sensor.on_video_frame(frame)


def write_recording(
    path: Path,
    images: list[np.ndarray],
    times_ms: list[float],
    fps: float,
    depth_mm: list[np.ndarray] | None = None,
    depth_to_colour_m: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Path:
    """A recording of RGB `images` (and uint16 `depth_mm`, millimetres) stamped `times_ms` on the
    device clock; writing takes as long as the recording lasts."""
    rs = load_pyrealsense()
    size = images[0].shape[1], images[0].shape[0]
    device = rs.software_device()
    colour_sensor = device.add_sensor("Color")
    colour_stream = _video_stream(rs, rs.stream.color, 0, size, fps, rs.format.rgb8, 3)
    colour = colour_sensor.add_video_stream(colour_stream)
    sensors = [(colour_sensor, colour)]
    if depth_mm is not None:
        depth_sensor = device.add_sensor("Depth")
        depth_stream = _video_stream(rs, rs.stream.depth, 1, size, fps, rs.format.z16, 2)
        depth = depth_sensor.add_video_stream(depth_stream)
        depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        extrinsics.translation = list(depth_to_colour_m)
        depth.register_extrinsics_to(colour, extrinsics)
        sensors.append((depth_sensor, depth))
    path.unlink(missing_ok=True)
    recorder = rs.recorder(str(path), device)
    syncer = rs.syncer()
    for sensor, profile in sensors:
        sensor.open(profile)
        sensor.start(syncer)
    started = time.monotonic()
    for number, (image, time_ms) in enumerate(zip(images, times_ms, strict=True)):
        # the recorder stamps each message with the host time it arrives and playback keeps that
        # pace, so frames are handed over at their own spacing, as the camera would have sent them
        time.sleep(max(HAND_OVER_S, started + (time_ms - times_ms[0]) / 1000 - time.monotonic()))
        if depth_mm is not None:
            _push(rs, depth_sensor, depth, depth_mm[number].astype(np.uint16), 2, number, time_ms)
        _push(rs, colour_sensor, colour, image, 3, number, time_ms)
    for sensor, _ in sensors:
        sensor.stop()
        sensor.close()
    del recorder  # the recorder writes the file out when it goes
    return path
