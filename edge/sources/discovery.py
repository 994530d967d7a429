"""Which cameras are plugged into this machine, and whether a typed address delivers a frame: what
`beltcam init` offers a technician instead of asking for device paths and serial numbers by heart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge.config import CameraConfig
from edge.sources.base import SourceError
from edge.sources.opencv_source import OpenCVCamera

V4L2_ROOT = Path("/sys/class/video4linux")
TRY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FoundCamera:
    kind: str  # as in the site file: opencv | realsense
    source: str  # the site file's `source`: a device index, or a RealSense serial number
    label: str  # what the technician sees in the list


def v4l2_cameras(root: Path = V4L2_ROOT) -> list[FoundCamera]:
    """USB and CSI cameras the kernel lists (capture nodes only: the first node of each device)."""
    found = []
    for node in sorted(root.glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        index = node.name.removeprefix("video")
        name = (
            (node / "name").read_text(encoding="utf-8", errors="replace").strip()
            if (node / "name").exists()
            else "?"
        )
        if (node / "index").exists() and (node / "index").read_text().strip() not in ("", "0"):
            continue  # a device's metadata node, not a picture
        found.append(FoundCamera("opencv", index, f"/dev/video{index}: {name}"))
    return found


def realsense_cameras() -> list[FoundCamera]:
    """Intel RealSense cameras by serial number (none when pyrealsense2 is not installed)."""
    try:
        import pyrealsense2 as rs
    except ImportError:
        return []
    found = []
    for device in rs.context().query_devices():
        serial = device.get_info(rs.camera_info.serial_number)
        name = device.get_info(rs.camera_info.name)
        found.append(FoundCamera("realsense", serial, f"RealSense {name} (serial {serial})"))
    return found


def cameras_present() -> list[FoundCamera]:
    return realsense_cameras() + v4l2_cameras()


def try_camera(camera: CameraConfig, timeout_s: float = TRY_TIMEOUT_S) -> tuple[int, int]:
    """Open an OpenCV camera (device index, URL, file) and grab one frame: its (width, height).
    Raises SourceError with the reason when it delivers nothing."""
    source = OpenCVCamera(camera, read_timeout_s=timeout_s)
    source.open()
    try:
        frame = source.read(timeout_s)
    finally:
        source.close()
    if frame.image is None or frame.image.size == 0:
        raise SourceError(f"{camera.source}: delivered an empty frame")
    height, width = frame.image.shape[:2]
    return width, height
