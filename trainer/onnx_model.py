"""An exported model read through ONNX Runtime behind the classifier interface evaluation uses.

The nightly gate compares a candidate with the live model on the same held-out footage; the live
model may be all that is left of its run (its ONNX file), and what acts on the belt is the exported
graph, not the PyTorch one: so both are evaluated as ONNX files, with the same code as a run's own
evaluation (`trainer.evaluate.evaluate`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from trainer.errors import RunError
from trainer.input_shape import Shape

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
ENGINE_CACHE_DIR = "tensorrt-cache"  # next to the model: its TensorRT engines, built on first load


def session_providers(wanted: list[str], cache_dir: Path) -> list:
    """ONNX Runtime providers in the site's order, those this machine has; TensorRT keeps its engines
    in `cache_dir` (next to the model), so only the first load of a model builds one."""
    available = set(onnxruntime.get_available_providers())
    chosen: list = []
    for name in wanted:
        provider = PROVIDERS[name]
        if provider not in available:
            continue
        if name == "tensorrt":
            cache_dir.mkdir(parents=True, exist_ok=True)
            options = {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache_dir),
                "trt_fp16_enable": True,
            }
            chosen.append((provider, options))
        else:
            chosen.append(provider)
    return chosen or ["CPUExecutionProvider"]


def session_options(threads: int = 0) -> onnxruntime.SessionOptions:
    """A session that does not spin: ONNX Runtime's threads otherwise spin between runs, and a live
    path paced at the camera's rate then burns half a core waiting (benchmarks/live_threads.py: 1.27
    cores at 10 fps against 0.76, the same latency). `threads`: CPU threads per run (0: one per core);
    fewer leave cores to the recorder and the nightly training on a small edge box."""
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


class OnnxClassifier(nn.Module):
    """`model(images) -> cams` for an exported model (B x 3 x H x W normalised images, the run's
    input shape); its maps are ReLU'd already, which the map readers' own ReLU leaves unchanged."""

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int = 0) -> None:
        """`providers`: short names in order of preference (`tensorrt`, `cuda`, `cpu`; default CPU),
        those this machine has; `threads` as `session_options`: as the live path opens the model."""
        super().__init__()
        chosen = session_providers(providers or ["cpu"], Path(path).parent / ENGINE_CACHE_DIR)
        try:
            self.session = onnxruntime.InferenceSession(str(path), session_options(threads), providers=chosen)
        except Exception as error:  # ONNX Runtime raises its own types for every kind of bad file
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunError(f"{path}: not a model ONNX Runtime can load ({first_line})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if "input_height" not in metadata or "threshold" not in metadata:
            raise RunError(f"{path}: not a model beltcam exported (no input size or threshold in it)")
        self.path = Path(path)
        self.input_shape: Shape = (int(metadata["input_height"]), int(metadata["input_width"]))
        self.threshold = float(metadata["threshold"])
        # the map readers ask a model for its device through its parameters
        self._device = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        (cams,) = self.session.run(["cams"], {"images": batch})
        return torch.from_numpy(cams)
