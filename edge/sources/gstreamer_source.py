"""GStreamer pipelines as a camera (`kind: gstreamer`), through PyGObject: Jetson CSI cameras
(`nvarguscamerasrc`), GigE Vision cameras (`aravissrc`), or anything else GStreamer can decode.

pip's OpenCV has no GStreamer, so beltcam drives GStreamer itself: the configured pipeline is the
camera part; beltcam appends the conversion to RGB and an appsink that keeps only the newest two
frames (a slow consumer drops frames instead of piling up latency). A pipeline written for OpenCV,
ending in `appsink`, works as is: that last element is replaced. Buffer times are on the
pipeline's clock, the host's monotonic clock, so `DeviceClock` keeps them nearly as they are.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np

from edge.config import CameraConfig
from edge.sources.base import Frame, FrameSource, SourceError, SourceStalled
from edge.sources.clock import DeviceClock, utc_from_monotonic

SINK_NAME = "beltcam_sink"
_TRAILING_APPSINK = re.compile(r"!\s*appsink\b[^!]*$")
_INIT_LOCK = threading.Lock()


def load_gstreamer():
    """(Gst, GstApp) from PyGObject, initialised, or a SourceError saying what to install."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        from gi.repository import Gst, GstApp
    except (ImportError, ValueError) as error:
        raise SourceError(
            f"GStreamer pipelines need PyGObject and GStreamer's introspection data ({error}): "
            "pip install '.[gstreamer]' (Debian: libgirepository1.0-dev libcairo2-dev to build it, "
            "gir1.2-gst-plugins-base-1.0 and gstreamer1.0-plugins-base)"
        ) from None
    with _INIT_LOCK:
        Gst.init(None)
    return Gst, GstApp


def pipeline_with_sink(description: str) -> str:
    """The camera part of `description`, then RGB conversion and beltcam's appsink."""
    camera_part = _TRAILING_APPSINK.sub("", description.strip()).rstrip().rstrip("!").rstrip()
    return (
        f"{camera_part} ! videoconvert ! video/x-raw,format=RGB ! "
        f"appsink name={SINK_NAME} max-buffers=2 drop=true sync=false"
    )


class GStreamerCamera(FrameSource):
    def __init__(self, camera: CameraConfig) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self._gst = None
        self._pipeline = None
        self._sink = None
        self._clock = DeviceClock()
        self._seq = 0

    def open(self) -> None:
        Gst, _ = self._gst = load_gstreamer()
        if not self.camera.source.strip():
            raise SourceError(f"camera {self.camera_id}: 'source' is empty (a GStreamer pipeline)")
        try:
            pipeline = Gst.parse_launch(pipeline_with_sink(self.camera.source))
        except Exception as error:  # GLib.Error: GStreamer's own words name the bad element
            raise SourceError(f"camera {self.camera_id}: pipeline: {error}") from None
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            message = self._bus_error(pipeline) or "the pipeline cannot start"
            pipeline.set_state(Gst.State.NULL)
            raise SourceError(f"camera {self.camera_id}: {message}")
        self._pipeline = pipeline
        self._sink = pipeline.get_by_name(SINK_NAME)
        self._clock.reset()

    def _bus_error(self, pipeline) -> str | None:
        Gst = self._gst[0]
        message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        if message is None:
            return None
        error, _debug = message.parse_error()
        return f"{message.src.get_name()}: {error.message}"

    def read(self, timeout_s: float) -> Frame:
        if self._pipeline is None:
            raise SourceError(f"GStreamer camera {self.camera_id} is not open")
        Gst = self._gst[0]
        sample = self._sink.emit("try-pull-sample", round(timeout_s * Gst.SECOND))
        arrival_ns = time.monotonic_ns()
        if sample is None:
            error = self._bus_error(self._pipeline)
            if error is not None:
                raise SourceError(f"camera {self.camera_id}: {error}")
            if self._sink.is_eos():
                raise SourceError(f"camera {self.camera_id}: the pipeline ended (end of stream)")
            raise SourceStalled(f"camera {self.camera_id}: no frame within {timeout_s:.1f} s")
        image = self._rgb(sample)
        buffer = sample.get_buffer()
        if buffer.pts == Gst.CLOCK_TIME_NONE:
            capture_ns = arrival_ns
        else:
            capture_ns = self._clock.to_host(self._pipeline.get_base_time() + buffer.pts, arrival_ns)
        seq = self._seq
        self._seq += 1
        return Frame(self.camera_id, seq, image, capture_ns, utc_from_monotonic(capture_ns))

    def _rgb(self, sample) -> np.ndarray:
        Gst = self._gst[0]
        structure = sample.get_caps().get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        buffer = sample.get_buffer()
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        if not ok:
            raise SourceError(f"camera {self.camera_id}: a frame's memory cannot be read")
        try:
            stride = mapped.size // height  # rows may be padded to 4 bytes
            rows = np.frombuffer(mapped.data, np.uint8, count=stride * height).reshape(height, stride)
            return rows[:, : width * 3].reshape(height, width, 3).copy()
        finally:
            buffer.unmap(mapped)

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_state(self._gst[0].State.NULL)
            self._pipeline = self._sink = None
