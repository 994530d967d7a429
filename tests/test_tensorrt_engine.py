"""The native TensorRT engine (`live.engine: tensorrt`): refused with its reason where TensorRT,
pycuda or a CUDA device is missing (this machine), and the same masks as ONNX Runtime where they are
(a Jetson or a GPU machine; skipped with the reason here)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from edge.config import LiveConfig
from edge.live.segmenter import LiveSegmenter, ModelRefused
from edge.live.tensorrt_engine import engine_file
from tests.test_live import MM_PER_PX, SIZE, _c1_frames
from trainer.cams import masks_from_maps
from trainer.dataset import model_input
from trainer.preprocess import median_background


def _native_unavailable() -> str | None:
    """Why this machine cannot run the native engine (None when it can)."""
    for module in ("tensorrt", "pycuda.driver"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            return f"`{module}` cannot be imported ({error}): no TensorRT here"
    import pycuda.driver as cuda

    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except cuda.Error as error:
        return f"CUDA cannot start: {error}"
    return None


def _segmenter(path, engine: str) -> LiveSegmenter:
    settings = LiveConfig(fusion="none", engine=engine, providers=["cpu"], background_every=1)
    return LiveSegmenter(path, settings, SIZE, (250 / MM_PER_PX, 0.0))


def test_without_tensorrt_the_model_is_refused_with_what_to_install(live_model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    with pytest.raises(ModelRefused) as refused:
        _segmenter(live_model_file, "tensorrt")
    message = str(refused.value)
    assert message.startswith(f"{live_model_file}: live.engine is tensorrt but `tensorrt` cannot be imported")
    assert "beltcam[jetson]" in message and "live.engine: onnxruntime" in message


def test_an_engine_is_cached_per_model_file_and_tensorrt_version(tmp_path):
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    first.write_bytes(b"one model")
    second.write_bytes(b"another model")
    cache = tmp_path / "tensorrt-cache"
    assert engine_file(first, cache, "10.3") == engine_file(first, cache, "10.3")
    assert engine_file(first, cache, "10.3") != engine_file(second, cache, "10.3")  # a new model builds anew
    assert engine_file(first, cache, "10.3") != engine_file(first, cache, "10.7")  # so does a JetPack upgrade
    assert engine_file(first, cache, "10.3").parent == cache


@pytest.mark.skipif(_native_unavailable() is not None, reason=str(_native_unavailable()))
def test_the_native_engine_gives_onnx_runtimes_masks(live_model_file):
    native, reference = _segmenter(live_model_file, "tensorrt"), _segmenter(live_model_file, "onnxruntime")
    assert list((live_model_file.parent / "tensorrt-cache").glob("*.plan"))  # built and kept
    images = [frame.image for frame in _c1_frames(12)]
    info = reference.info
    background = median_background(images, info.foreground)
    agree = total = 0
    for image in images:
        frame, foreground = model_input(image, background, info.input_shape, info.foreground)
        ours = masks_from_maps(native.maps(frame, foreground)[None], foreground[None], info.threshold)
        theirs = masks_from_maps(reference.maps(frame, foreground)[None], foreground[None], info.threshold)
        agree += int((ours == theirs).sum())
        total += ours.size
    assert agree / total >= 0.995  # FP16 engine against FP32 ONNX Runtime
    again = _segmenter(live_model_file, "tensorrt")  # from the cache this time
    zeros = {"images": np.zeros((1, 3, *info.input_shape), np.float32)}
    assert np.array_equal(again.session.run(["cams"], zeros)[0], native.session.run(["cams"], zeros)[0])
