"""The site's C1 and C2 cameras, built from the site file: real drivers from `edge.sources`, the
simulated belt from `edge.simulator`, every one behind frame validation."""

from __future__ import annotations

import time
from pathlib import Path

from edge.config import SiteConfig
from edge.simulator.camera import SimulatedCamera
from edge.simulator.world import BeltWorld
from edge.sources.base import FrameSource
from edge.sources.folder_source import ImageFolderCamera
from edge.sources.gstreamer_source import GStreamerCamera
from edge.sources.health import CheckedSource
from edge.sources.opencv_source import OpenCVCamera
from edge.sources.realsense_source import RealSenseCamera


def build_sources(config: SiteConfig) -> dict[str, FrameSource]:
    """C1 and C2 sources, every one behind frame validation (`health.CheckedSource`); simulated
    cameras share one world and one time base, as on a real belt."""
    epoch_ns = time.monotonic_ns()
    world = BeltWorld(config.simulator)
    sources: dict[str, FrameSource] = {}
    for camera in config.cameras:
        if camera.kind == "simulated":
            source = SimulatedCamera(camera, config.simulator, epoch_ns=epoch_ns, world=world)
        elif camera.kind == "realsense":
            source = RealSenseCamera(camera)
        elif camera.kind == "gstreamer":
            source = GStreamerCamera(camera)
        elif Path(camera.source).is_dir():
            source = ImageFolderCamera(camera)
        else:
            source = OpenCVCamera(camera, read_timeout_s=config.recorder.stall_timeout_s)
        sources[camera.id] = CheckedSource(source, camera.resolution)
    return sources
