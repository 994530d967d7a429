"""An RTSP camera for tests: GStreamer's RTSP server streaming a folder of JPEG frames on loopback.

Run by Debian's python3 (PyGObject and the GStreamer RTSP server are Debian packages, not wheels):
`python3 rtsp_server.py FOLDER FPS` prints the port it listens on, then serves
rtsp://127.0.0.1:PORT/belt until killed. The frames loop, so a client can connect at any time.
`rtsp_camera` starts it from the test's virtual environment and stops it afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT = "/belt"


def serve(folder: str, fps: int) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{folder}/%05d.jpg" loop=true caps="image/jpeg,framerate={fps}/1" '
        "! jpegparse ! videorate ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)  # one pipeline however often the camera reconnects
    server.get_mount_points().add_factory(MOUNT, factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


@contextmanager
def rtsp_camera(folder: Path, fps: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """The stream URL and the server process (tests pause it with SIGSTOP to make the camera stall)."""
    if shutil.which(SYSTEM_PYTHON) is None:
        raise RuntimeError(f"{SYSTEM_PYTHON} not found: the RTSP test server runs on Debian's python3")
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: GStreamer's warnings never block it
        process = subprocess.Popen(
            [SYSTEM_PYTHON, __file__, str(folder), str(fps)], stdout=subprocess.PIPE, stderr=log, text=True
        )
        try:
            port = process.stdout.readline().strip()
            if not port.isdigit():
                process.wait(timeout=10)
                log.seek(0)
                raise RuntimeError(
                    "the RTSP test server did not start (Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 "
                    f"and gstreamer1.0-plugins-good are needed; make test installs them): {log.read()}"
                )
            yield f"rtsp://127.0.0.1:{port}{MOUNT}", process
        finally:
            process.kill()
            process.wait(timeout=10)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
