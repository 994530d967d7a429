"""Intel RealSense cameras through pyrealsense2: a live device by serial number, or a RealSense
recording (rosbag2 `.db3`, older `.bag`) played back as if it were the camera.

Exposure and white balance are locked when the config gives them: auto-exposure that drifts
differently on C1 and C2 is exactly the background bias the classifier must not learn. Depth, when
asked for, is aligned to the colour image (`rs.align`), so pixel (u, v) of `depth_mm` is the distance
of pixel (u, v) of the image. Timestamps: with `timestamps: global` (the default) the SDK maps the
device clock onto the host's wall clock and corrects its drift, which gives two devices one time
base; with `hardware` the device clock is mapped by `DeviceClock`; a recording keeps its recorded
times, moved to the moment playback started.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge.config import CameraConfig
from edge.sources.base import EndOfStream, Frame, FrameSource, SourceError, SourceStalled
from edge.sources.clock import DeviceClock, monotonic_from_utc_ns, utc_from_monotonic

RECORDING_SUFFIXES = (".db3", ".bag")


def load_pyrealsense():
    """The pyrealsense2 module, or a SourceError saying what to install."""
    try:
        import pyrealsense2
    except ImportError as error:
        if "libusb" in str(error):
            raise SourceError(
                "pyrealsense2 needs the system library libusb-1.0 (Debian: apt-get install libusb-1.0-0)"
            ) from None
        raise SourceError("RealSense support is not installed: pip install '.[realsense]'") from None
    return pyrealsense2


def global_capture_time(timestamp_ms: float) -> tuple[int, datetime]:
    """A frame stamped in the SDK's global time (the host's wall clock, ms) on the monotonic clock."""
    utc_ns = round(timestamp_ms * 1e6)
    return monotonic_from_utc_ns(utc_ns), datetime.fromtimestamp(utc_ns / 1e9, UTC)


class RealSenseCamera(FrameSource):
    def __init__(self, camera: CameraConfig) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self._rs = None
        self._pipeline = None
        self._align = None
        self._clock = DeviceClock()
        self._playback_offset_ns: int | None = None
        self._last_frame_number: int | None = None
        self._seq = 0

    @property
    def is_recording(self) -> bool:
        return self.camera.source.lower().endswith(RECORDING_SUFFIXES)

    def open(self) -> None:
        rs = self._rs = load_pyrealsense()
        config = rs.config()
        width, height = self.camera.resolution
        if self.is_recording:
            path = Path(self.camera.source)
            if not path.is_file():
                raise SourceError(f"camera {self.camera_id}: RealSense recording {path} not found")
            config.enable_device_from_file(str(path), repeat_playback=False)
        else:
            if self.camera.source:
                config.enable_device(self.camera.source)
            fps = round(self.camera.fps)
            config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
            if self.camera.depth:
                config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as error:
            raise SourceError(
                f"camera {self.camera_id}: RealSense {self.camera.source or 'device'}: {error}"
            ) from None
        device = profile.get_device()
        if self.is_recording:
            device.as_playback().set_real_time(True)  # delivered at the pace it was recorded
        else:
            try:
                self._lock_colour_controls(device)
                self._choose_clock(device)
            except RuntimeError as error:  # e.g. an exposure outside what this sensor accepts
                pipeline.stop()
                raise SourceError(f"camera {self.camera_id}: cannot set up the sensor: {error}") from None
        if self.camera.depth and not any(s.stream_type() == rs.stream.depth for s in profile.get_streams()):
            pipeline.stop()
            raise SourceError(
                f"camera {self.camera_id}: depth is configured but {self.camera.source} has no depth stream"
            )
        self._align = rs.align(rs.stream.color) if self.camera.depth else None
        self._pipeline = pipeline
        self._clock.reset()
        self._playback_offset_ns = self._last_frame_number = None

    def _lock_colour_controls(self, device) -> None:
        rs = self._rs
        sensor = device.first_color_sensor()
        if self.camera.exposure_us is not None:
            sensor.set_option(rs.option.enable_auto_exposure, 0)
            sensor.set_option(rs.option.exposure, self.camera.exposure_us)
        if self.camera.white_balance_k is not None:
            sensor.set_option(rs.option.enable_auto_white_balance, 0)
            sensor.set_option(rs.option.white_balance, self.camera.white_balance_k)

    def _choose_clock(self, device) -> None:
        enabled = 1.0 if self.camera.timestamps == "global" else 0.0
        for sensor in device.query_sensors():
            if sensor.supports(self._rs.option.global_time_enabled):
                sensor.set_option(self._rs.option.global_time_enabled, enabled)

    def read(self, timeout_s: float) -> Frame:
        if self._pipeline is None:
            raise SourceError(f"RealSense camera {self.camera_id} is not open")
        frames = self._next_frameset(timeout_s)
        if self._align is not None:
            frames = self._align.process(frames)
        colour = frames.get_color_frame()
        image = np.asanyarray(colour.get_data()).copy()
        capture_ns, capture_utc = self._capture_time(colour)
        seq = self._seq
        self._seq += 1
        return Frame(
            camera=self.camera_id,
            seq=seq,
            image=image,
            capture_ns=capture_ns,
            capture_utc=capture_utc,
            depth_mm=self._depth_mm(frames) if self._align is not None else None,
        )

    def _next_frameset(self, timeout_s: float):
        """The next frameset with a new colour frame: with depth on, the SDK may hand out the same
        colour frame twice, paired with successive depth frames."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = max(1, round((deadline - time.monotonic()) * 1000))
            try:
                ok, frames = self._pipeline.try_wait_for_frames(remaining_ms)
            except RuntimeError as error:
                raise SourceError(f"camera {self.camera_id}: {error}") from None
            if not ok:
                if self.is_recording:
                    raise EndOfStream(f"camera {self.camera_id}: recording {self.camera.source} has ended")
                raise SourceStalled(f"camera {self.camera_id}: no frame within {timeout_s:.1f} s")
            colour = frames.get_color_frame()
            if colour and colour.get_frame_number() != self._last_frame_number:
                self._last_frame_number = colour.get_frame_number()
                return frames

    def _depth_mm(self, frames) -> np.ndarray:
        depth = frames.get_depth_frame()
        if not depth:
            raise SourceError(f"camera {self.camera_id}: a frame came without its depth image")
        raw = np.asanyarray(depth.get_data())
        metres_per_unit = depth.get_units()
        if abs(metres_per_unit - 0.001) < 1e-9:
            return raw.copy()
        return np.clip(np.rint(raw * (metres_per_unit * 1000)), 0, 65535).astype(np.uint16)

    def _capture_time(self, colour) -> tuple[int, datetime]:
        rs = self._rs
        timestamp_ms = colour.get_timestamp()
        device_ns = round(timestamp_ms * 1e6)
        if self.is_recording:  # the recorded times, moved to now: no transport delay to estimate
            if self._playback_offset_ns is None:
                self._playback_offset_ns = time.monotonic_ns() - device_ns
            capture_ns = device_ns + self._playback_offset_ns
            return capture_ns, utc_from_monotonic(capture_ns)
        if colour.get_frame_timestamp_domain() == rs.timestamp_domain.global_time:
            return global_capture_time(timestamp_ms)
        arrival_ns = time.monotonic_ns()
        if colour.supports_frame_metadata(rs.frame_metadata_value.time_of_arrival):
            arrival_ms = colour.get_frame_metadata(rs.frame_metadata_value.time_of_arrival)
            arrival_ns = monotonic_from_utc_ns(arrival_ms * 1_000_000)
        capture_ns = self._clock.to_host(device_ns, arrival_ns)
        return capture_ns, utc_from_monotonic(capture_ns)

    def close(self) -> None:
        if self._pipeline is not None:
            with contextlib.suppress(RuntimeError):  # already stopped by the end of a recording
                self._pipeline.stop()
            self._pipeline = None
