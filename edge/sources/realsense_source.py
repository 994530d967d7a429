"""Intel RealSense cameras through pyrealsense2: a live device by serial number, or a RealSense
recording (rosbag2 `.db3`, older `.bag`) played back as if it were the camera.

Exposure and white balance are locked when the config gives them: auto-exposure that drifts
differently on C1 and C2 is exactly the background bias the classifier must not learn. Device
timestamps (hardware or global clock, milliseconds) are mapped once onto this host's monotonic
clock, so frame spacing is the device's own and both cameras share one time base.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from edge.config import CameraConfig
from edge.sources.base import Frame, FrameSource, SourceError, SourceStalled

RECORDING_SUFFIXES = (".db3", ".bag")
HAND_OVER_S = 0.01


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


class RealSenseCamera(FrameSource):
    def __init__(self, camera: CameraConfig) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self._pipeline = None
        self._clock_offset_ns: int | None = None
        self._utc_offset: datetime | None = None
        self._seq = 0

    @property
    def is_recording(self) -> bool:
        return self.camera.source.lower().endswith(RECORDING_SUFFIXES)

    def open(self) -> None:
        rs = load_pyrealsense()
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
            config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, round(self.camera.fps))
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
            self._lock_colour_controls(rs, device)
        self._pipeline = pipeline
        self._clock_offset_ns = None

    def _lock_colour_controls(self, rs, device) -> None:
        sensor = device.first_color_sensor()
        if self.camera.exposure_us is not None:
            sensor.set_option(rs.option.enable_auto_exposure, 0)
            sensor.set_option(rs.option.exposure, self.camera.exposure_us)
        if self.camera.white_balance_k is not None:
            sensor.set_option(rs.option.enable_auto_white_balance, 0)
            sensor.set_option(rs.option.white_balance, self.camera.white_balance_k)

    def read(self, timeout_s: float) -> Frame:
        if self._pipeline is None:
            raise SourceError(f"RealSense camera {self.camera_id} is not open")
        try:
            ok, frames = self._pipeline.try_wait_for_frames(round(timeout_s * 1000))
        except RuntimeError as error:
            raise SourceError(f"camera {self.camera_id}: {error}") from None
        if not ok:
            if self.is_recording:
                raise SourceError(f"camera {self.camera_id}: recording {self.camera.source} has ended")
            raise SourceStalled(f"camera {self.camera_id}: no frame within {timeout_s:.1f} s")
        colour = frames.get_color_frame()
        image = np.asanyarray(colour.get_data()).copy()
        expected = tuple(self.camera.resolution)
        if (image.shape[1], image.shape[0]) != expected:
            raise SourceError(
                f"camera {self.camera_id}: frame is {image.shape[1]}x{image.shape[0]}, "
                f"configured {expected[0]}x{expected[1]}"
            )
        device_ns = round(colour.get_timestamp() * 1e6)
        if self._clock_offset_ns is None:
            self._clock_offset_ns = time.monotonic_ns() - device_ns
            self._utc_offset = datetime.now(UTC) - timedelta(microseconds=device_ns / 1000)
        seq = self._seq
        self._seq += 1
        return Frame(
            camera=self.camera_id,
            seq=seq,
            image=image,
            capture_ns=device_ns + self._clock_offset_ns,
            capture_utc=self._utc_offset + timedelta(microseconds=device_ns / 1000),
        )

    def close(self) -> None:
        if self._pipeline is not None:
            with contextlib.suppress(RuntimeError):  # already stopped by the end of a recording
                self._pipeline.stop()
            self._pipeline = None


def write_recording(path: Path, images: list[np.ndarray], times_ms: list[float], fps: float) -> Path:
    """A RealSense recording (colour stream, RGB) made with pyrealsense2's own software device and
    recorder: what a real camera would have written, for tests and for replaying footage as a camera.
    Current SDKs write rosbag2, so the file name must end in `.db3`."""
    rs = load_pyrealsense()
    height, width = images[0].shape[:2]
    device = rs.software_device()
    sensor = device.add_sensor("Color")
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.fx = intrinsics.fy = float(width)
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    intrinsics.model = rs.distortion.none
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp = width, height, round(fps), 3
    stream.fmt, stream.intrinsics = rs.format.rgb8, intrinsics
    profile = sensor.add_video_stream(stream)
    path.unlink(missing_ok=True)
    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(rs.syncer())
    for number, (image, time_ms) in enumerate(zip(images, times_ms, strict=True)):
        frame = rs.software_video_frame()
        frame.pixels = np.ascontiguousarray(image)
        frame.bpp, frame.stride = 3, width * 3
        frame.timestamp, frame.domain = time_ms, rs.timestamp_domain.hardware_clock
        frame.frame_number, frame.profile = number, profile.as_video_stream_profile()
        sensor.on_video_frame(frame)
        time.sleep(HAND_OVER_S)  # the software sensor's queue drops frames pushed faster than it drains
    sensor.stop()
    sensor.close()
    del recorder  # the recorder writes the file out when it goes
    return path
