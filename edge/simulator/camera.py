"""The simulated belt as a camera source, behind the same interface as the real cameras.

Two `SimulatedCamera`s built on the same config and time base (epoch) show one consistent belt: C1
sees every object, C2 sees the same flow later with the sorter's removals. In real-time mode a camera
runs on its own clock like hardware does: a reader that falls behind loses frames (the sequence
number jumps), it does not slow the belt down.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from calibration import Board
from calibration.synthetic import board_poses, place_board_on_belt, render_board_view
from edge.config import CameraConfig, SimulatedBoard, SimulatorConfig
from edge.simulator.render import BeltRenderer
from edge.simulator.world import BeltWorld, camera_view
from edge.sources.base import Frame, FrameSource, SourceError, SourceStalled

HELD_POSES = 12  # the technician's sequence of board poses for a lens calibration


def simulated_lens(width: int, height: int) -> np.ndarray:
    """The simulated cameras' lens: a pinhole of focal length = image width (about 53 degrees across),
    centred, without distortion: the truth a lens calibration on the simulator is judged against."""
    return np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])


class SimulatedCamera(FrameSource):
    def __init__(
        self,
        camera: CameraConfig,
        simulator: SimulatorConfig,
        epoch_ns: int | None = None,
        world: BeltWorld | None = None,
    ) -> None:
        self.camera_id = camera.id
        self.fps = camera.fps
        self.resolution = camera.resolution
        self.simulator = simulator
        self.world = world or BeltWorld(simulator)
        self.view = camera_view(camera.id, camera.resolution, simulator)
        self.renderer = BeltRenderer(self.world, self.view)
        self.epoch_ns = time.monotonic_ns() if epoch_ns is None else epoch_ns
        self._epoch_utc = datetime.now(UTC) - timedelta(
            microseconds=(time.monotonic_ns() - self.epoch_ns) / 1000
        )
        self._faults = [f for f in simulator.faults if f.camera == camera.id]
        self._next_seq = 0
        self._open = False
        self._last_image: np.ndarray | None = None

    def time_of(self, seq: int) -> float:
        return seq / self.fps

    def frame_at(self, seq: int) -> Frame:
        """Render frame `seq` directly (no pacing, no faults): for tests, import and benchmarks."""
        t_s = self.time_of(seq)
        image, truth = self.renderer.render(t_s, seq, removed_by_sorter=self.camera_id == "c2")
        board = self.simulator.board
        if board is not None and self.camera_id in board.cameras:
            image = self._held_board(t_s, seq, board) if board.held else self._with_board(image, board)
        capture_ns = self.epoch_ns + round(t_s * 1e9) + self.view.clock_offset_ns
        return Frame(
            camera=self.camera_id,
            seq=seq,
            image=image,
            capture_ns=capture_ns,
            capture_utc=self._epoch_utc + timedelta(seconds=t_s),
            truth=truth,
        )

    def _with_board(self, image: np.ndarray, board: SimulatedBoard) -> np.ndarray:
        """The board as the camera sees it lying on the belt: its own belt coordinates (origin at the
        image's left edge), `mm_per_px` from the installation the simulator implies."""
        scale = self.view.mm_per_px
        pixel_to_belt = np.diag([scale, scale, 1.0])
        return place_board_on_belt(image, pixel_to_belt, Board.parse(board.board), board.origin_mm)

    def _held_board(self, t_s: float, seq: int, board: SimulatedBoard) -> np.ndarray:
        """The board held up in front of the lens, a new tilted pose every `hold_s`, seen through the
        simulated lens (`simulated_lens`: no distortion): what `calibrate intrinsics` photographs."""
        width, height = self.resolution
        lens = simulated_lens(width, height)
        printed = Board.parse(board.board)
        poses = board_poses(lens, printed, HELD_POSES, seed=self.simulator.seed, image_size=(width, height))
        rvec, tvec = poses[int(t_s / board.hold_s) % HELD_POSES]
        view = render_board_view(printed, lens, np.zeros(5), rvec, tvec, (width, height)).astype(np.float32)
        rng = np.random.default_rng((self.simulator.seed, seq))
        noise = rng.normal(0, self.simulator.noise_sigma, view.shape)
        noisy = np.clip(view + noise, 0, 255).astype(np.uint8)  # a sensor's noise: never two equal frames
        return np.repeat(noisy[:, :, None], 3, axis=2)

    def _active_fault(self, t_s: float) -> str | None:
        for fault in self._faults:
            if fault.at_s <= t_s < fault.at_s + fault.duration_s:
                return fault.kind
        return None

    def _now_s(self) -> float:
        return (time.monotonic_ns() - self.epoch_ns) / 1e9

    def open(self) -> None:
        t_s = self._now_s() if self.simulator.realtime else self.time_of(self._next_seq)
        if self._active_fault(t_s) == "error":
            if not self.simulator.realtime:
                self._next_seq += 1  # simulated time passes while the device is unplugged
            raise SourceError(f"simulated camera {self.camera_id}: device not found (scripted fault)")
        self._open = True

    def read(self, timeout_s: float) -> Frame:
        if not self._open:
            raise SourceError(f"simulated camera {self.camera_id} is not open")
        seq = self._next_seq
        if self.simulator.realtime:
            # a camera produces frames whether or not anyone reads them: skip the ones already gone
            seq = max(seq, int(self._now_s() * self.fps))
            wait_s = self.time_of(seq) - self._now_s()
            if wait_s > timeout_s:
                time.sleep(timeout_s)
                raise SourceStalled(f"simulated camera {self.camera_id}: no frame within {timeout_s:.1f} s")
            if wait_s > 0:
                time.sleep(wait_s)
        fault = self._active_fault(self.time_of(seq))
        if fault == "error":
            self._open = False
            self._next_seq = seq + 1
            raise SourceError(f"simulated camera {self.camera_id}: connection lost (scripted fault)")
        if fault == "stall":
            stalled_until = next(
                f.at_s + f.duration_s
                for f in self._faults
                if f.at_s <= self.time_of(seq) < f.at_s + f.duration_s
            )
            self._next_seq = int(stalled_until * self.fps) + 1
            if self.simulator.realtime:
                time.sleep(min(timeout_s, max(0.0, stalled_until - self._now_s())))
            raise SourceStalled(f"simulated camera {self.camera_id}: no frame within {timeout_s:.1f} s")
        self._next_seq = seq + 1
        frame = self.frame_at(seq)
        if fault == "frozen" and self._last_image is not None:
            return replace(frame, image=self._last_image.copy(), truth=None)
        if fault == "black":
            return replace(frame, image=np.zeros_like(frame.image), truth=None)
        self._last_image = frame.image
        return frame

    def close(self) -> None:
        self._open = False
