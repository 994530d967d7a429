"""The live model as a native TensorRT engine with pycuda buffers (`live.engine: tensorrt`), for
Jetson-class devices where ONNX Runtime's TensorRT provider is missing or too heavy.

The engine is built once from the exported ONNX file (a first build takes minutes on a Jetson) and
kept in the model's `tensorrt-cache/`, named by the file's digest and the TensorRT version, so a new
model or a JetPack upgrade builds afresh and a restart does not. It answers `run(outputs, feeds)` as
an ONNX Runtime session does, so the segmenter's pre- and post-processing (the trainer's own) are the
same on every engine. One CUDA context is shared by the threads that load and run the model (the
registry watcher builds, the live path runs): each call makes it current and releases it.

`tensorrt` comes with JetPack (or NVIDIA's wheels), `pycuda` with the `jetson` extra; without them,
or without a CUDA device, the model is refused with that reason and the agent says so.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import ModuleType

import numpy as np

from edge.store.files import atomic_write

INPUT = "images"
WORKSPACE_BYTES = 1 << 30  # the most scratch memory a layer may take while the engine builds


class EngineUnavailable(RuntimeError):
    """This machine cannot run the native engine, or TensorRT cannot take the model: the message
    says which (the caller names the model file)."""


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise EngineUnavailable(
            f"live.engine is tensorrt but `{name}` cannot be imported ({error}): install the `jetson` "
            "extra (pip install 'beltcam[jetson]') on a machine with TensorRT (JetPack), or set "
            "live.engine: onnxruntime"
        ) from None


def engine_file(onnx_path: Path, cache_dir: Path, trt_version: str) -> Path:
    """Where the engine of this exact model file and TensorRT version is kept."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    return cache_dir / f"{onnx_path.stem}-{digest}-trt{trt_version}.plan"


class TensorRTEngine:
    """One model's engine, its execution context and its host/device buffers (batch 1)."""

    def __init__(
        self,
        onnx_path: Path,
        cache_dir: Path,
        input_shape: tuple[int, int],
        while_building: Callable[[], AbstractContextManager] = nullcontext,
    ) -> None:
        """`input_shape`: the model's height and width (its metadata). Builds the engine (inside
        `while_building()`: it takes minutes) when the cache has none for this file; raises
        EngineUnavailable when this machine or TensorRT cannot."""
        self.while_building = while_building
        self.trt = _import("tensorrt")
        self.cuda = _import("pycuda.driver")
        try:
            self.cuda.init()
            if self.cuda.Device.count() == 0:
                raise EngineUnavailable("live.engine is tensorrt but this machine has no CUDA device")
            self.context = self.cuda.Device(0).retain_primary_context()
        except self.cuda.Error as error:
            raise EngineUnavailable(f"live.engine is tensorrt but CUDA cannot start: {error}") from None
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.shape = (1, 3, *input_shape)
        self.lock = threading.Lock()
        self.context.push()
        try:
            plan = self._plan(onnx_path, cache_dir)
            self.runtime = self.trt.Runtime(self.logger)  # kept: the engine must not outlive it
            self.engine = self.runtime.deserialize_cuda_engine(plan)
            if self.engine is None:
                raise EngineUnavailable(
                    "TensorRT cannot load its engine (delete tensorrt-cache/ to build anew)"
                )
            self.execution = self.engine.create_execution_context()
            self.execution.set_input_shape(INPUT, self.shape)
            self.stream = self.cuda.Stream()
            self.host: dict[str, np.ndarray] = {}
            self.device = {}
            for index in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(index)
                shape = tuple(self.execution.get_tensor_shape(name))
                dtype = self.trt.nptype(self.engine.get_tensor_dtype(name))
                self.host[name] = self.cuda.pagelocked_empty(shape, dtype)
                self.device[name] = self.cuda.mem_alloc(self.host[name].nbytes)
                self.execution.set_tensor_address(name, int(self.device[name]))
        finally:
            self.context.pop()

    def _plan(self, onnx_path: Path, cache_dir: Path) -> bytes:
        """The serialized engine: from the cache, else built from the ONNX file and cached."""
        cached = engine_file(onnx_path, cache_dir, self.trt.__version__)
        if cached.is_file():
            return cached.read_bytes()
        builder = self.trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch: TensorRT 10's only kind
        parser = self.trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineUnavailable(f"TensorRT cannot parse it ({errors})")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        config.set_flag(self.trt.BuilderFlag.FP16)  # as ONNX Runtime's TensorRT provider is set up
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT, self.shape, self.shape, self.shape)  # the live path sends one frame
        config.add_optimization_profile(profile)
        with self.while_building():
            plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineUnavailable("TensorRT could not build an engine (its log above says why)")
        atomic_write(cached, bytes(plan))
        return bytes(plan)

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """As `onnxruntime.InferenceSession.run`: the named outputs of one batch of one image."""
        images = np.asarray(feeds[INPUT], dtype=np.float32)
        if images.shape != self.shape:
            raise ValueError(f"the engine takes {self.shape} images, not {images.shape}")
        with self.lock:
            self.context.push()
            try:
                np.copyto(self.host[INPUT], images)
                self.cuda.memcpy_htod_async(self.device[INPUT], self.host[INPUT], self.stream)
                if not self.execution.execute_async_v3(self.stream.handle):
                    raise RuntimeError("TensorRT failed to run the engine")
                for name in outputs:
                    self.cuda.memcpy_dtoh_async(self.host[name], self.device[name], self.stream)
                self.stream.synchronize()
                return [self.host[name].copy() for name in outputs]
            finally:
                self.context.pop()
