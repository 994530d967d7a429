"""Flow providers recover known motion; RAFT without local weights is a clear error."""

import cv2
import numpy as np
import pytest

from trainer.flow import BeltMotionFlow, FlowError, make_flow_provider


def textured(seed: int = 0, size=(96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, size).astype(np.float32), (0, 0), 2.0)
    noise = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(noise[..., None], 3, axis=2)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_opencv_flows_recover_a_translation(name):
    frame_t = textured()
    frame_s = shifted(frame_t, 4.0, -2.0)  # content moves +4 in x, -2 in y from t to s
    flow = make_flow_provider(name)(frame_t, frame_s)
    centre = flow[20:-20, 20:-20].reshape(-1, 2)
    assert np.median(centre[:, 0]) == pytest.approx(4.0, abs=0.3)
    assert np.median(centre[:, 1]) == pytest.approx(-2.0, abs=0.3)


def test_belt_motion_flow_is_velocity_times_dt():
    flow = BeltMotionFlow((200.0, -10.0))(textured(), textured(), dt_s=0.05)
    assert flow.shape == (96, 128, 2)
    assert np.allclose(flow[..., 0], 10.0) and np.allclose(flow[..., 1], -0.5)
    with pytest.raises(FlowError, match="needs frame times"):
        BeltMotionFlow((1.0, 0.0))(textured(), textured())
    with pytest.raises(FlowError, match="belt_velocity_px_s"):
        make_flow_provider("belt")


def test_raft_without_local_weights_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    with pytest.raises(FlowError, match=r"RAFT weights not found at .*raft_small"):
        make_flow_provider("raft")
