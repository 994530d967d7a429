"""The devices a site's agent needs at boot, as systemd device units the service waits for.

A USB camera or a USB-serial valve link appears some seconds into boot; an agent started before it
begins with a camera error and a reconnect. The unit orders itself after the device units of the
V4L2 cameras and the serial link the site file names (`Wants=` + `After=`: systemd waits up to its
device timeout, 90 s by default, then starts the agent anyway, which reconnects to what comes late).
Serial ports have device units out of the box; V4L2 devices only once udev tags them for systemd,
which the rule below does. RealSense cameras are found by serial number through librealsense, not by
a device path, and network cameras come after `network-online.target`: neither is listed here.
"""

from __future__ import annotations

import re
import string

from edge.config import SiteConfig

UDEV_RULE_NAME = "70-beltcam-cameras.rules"
UDEV_RULE = (
    "# beltcam: V4L2 cameras get systemd device units, so that beltcam.service starts after them\n"
    'SUBSYSTEM=="video4linux", TAG+="systemd"\n'
)
PIPELINE_DEVICE = re.compile(r"""\bdevice=["']?(/dev/[^\s!"']+)""")  # v4l2src device=/dev/video0
_UNESCAPED = set(string.ascii_letters + string.digits + ":_.")


def device_paths(config: SiteConfig) -> list[str]:
    """The device files the site's cameras and valve link are opened through, in site-file order."""
    paths = []
    for camera in config.cameras:
        if camera.kind == "opencv" and camera.source.isdigit():
            paths.append(f"/dev/video{camera.source}")
        elif camera.kind == "opencv" and camera.source.startswith("/dev/"):
            paths.append(camera.source)
        elif camera.kind == "gstreamer" or "!" in camera.source:  # OpenCV opens pipelines too
            paths.extend(PIPELINE_DEVICE.findall(camera.source))
    if config.bridge.transport == "serial" and config.bridge.serial_port:
        paths.append(config.bridge.serial_port)
    return list(dict.fromkeys(paths))


def needs_udev_rule(paths: list[str]) -> bool:
    """Serial ports are tagged for systemd by its own rules; video devices are not."""
    return any(path.startswith(("/dev/video", "/dev/v4l/")) for path in paths)


def device_unit(path: str) -> str:
    """The device unit systemd names after a device path (what `systemd-escape --path --suffix=device`
    prints; a test holds the two together)."""
    trimmed = re.sub("/+", "/", path).strip("/")
    escaped = "".join(
        "-" if char == "/" else char if char in _UNESCAPED else "".join(f"\\x{b:02x}" for b in char.encode())
        for char in trimmed
    )
    if escaped.startswith("."):
        escaped = "\\x2e" + escaped[1:]
    return f"{escaped}.device"
