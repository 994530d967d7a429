"""Live inference on this machine: the same exported classifier in ONNX Runtime and in PyTorch eager,
its FLOPs against this CPU's measured matrix-multiply peak, and ONNX Runtime INT8.

Per backbone (ResNet-18 and ResNet-50, input 256 x 192 = 256 px long side of a 4:3 camera, batch 1):
  torch ms / fps     PyTorch eager, no_grad, per frame
  ort ms / fps       ONNX Runtime, CPU provider, per frame (the live path's session)
  GFLOP              one forward pass (torch's FlopCounterMode: a multiply-add is 2 FLOPs)
  of peak            achieved GFLOP/s of ONNX Runtime over the best float32 throughput measured on
                     this CPU (2048 x 2048 MatMul in torch and ONNX Runtime, a 256-channel 3x3 Conv)
  int8 ms            ONNX Runtime after static INT8 quantization (QDQ, per channel, calibrated on
                     simulated C1 frames prepared as the live path prepares them)
  int8 agreement     share of pixels whose label (background / illegal / legal) INT8 and FP32 agree on

Models are randomly initialised (no weights can be downloaded here): speed does not depend on the
weights; the agreement figure is of a random model's maps and is only a first indication.

    .venv/bin/python -m benchmarks.inference [--runs 50] [--backbones resnet18 resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import describe_machine, run_record, write_results
from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera
from trainer.cams import input_batch, maps_at_input_size, masks_from_maps
from trainer.dataset import AFTER, BEFORE, model_input
from trainer.export import export_onnx
from trainer.model import CamClassifier
from trainer.preprocess import ForegroundSettings, median_background, split_foreground

SHAPE = (192, 256)  # height, width: 256 px long side of a 4:3 camera
CAMERA = (640, 480)
THRESHOLD = 0.5


def _best_gflops(multiply, flops: float, repeats: int = 10, tries: int = 5) -> float:
    multiply()
    best = 0.0
    for _ in range(tries):
        started = time.perf_counter()
        for _ in range(repeats):
            multiply()
        best = max(best, flops * repeats / (time.perf_counter() - started) / 1e9)
    return best


def _ort_conv_gflops(channels: int = 256, side: int = 56) -> float:
    """A 3x3 convolution as ResNet's middle layers have, in ONNX Runtime."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, side, side])
    weights = numpy_helper.from_array(np.random.rand(channels, channels, 3, 3).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([conv], "conv", [x], [y], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.rand(1, channels, side, side).astype(np.float32)
    return _best_gflops(lambda: session.run(None, {"x": image}), 2 * channels**2 * 9 * side**2)


def measured_peak_gflops(size: int = 2048) -> dict[str, float]:
    """float32 throughput of this CPU (all its threads), best of several tries: a matrix multiply by
    torch and by ONNX Runtime, and one of ResNet's 3x3 convolutions by ONNX Runtime."""
    a, b = np.random.rand(size, size).astype(np.float32), np.random.rand(size, size).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")]
    output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {
        "torch_matmul": round(_best_gflops(lambda: torch.mm(ta, tb), 2 * size**3), 1),
        "ort_matmul": round(_best_gflops(lambda: session.run(None, {"a": a, "b": b}), 2 * size**3), 1),
        "ort_conv3x3": round(_ort_conv_gflops(), 1),
    }


def prepared_inputs(count: int) -> list[np.ndarray]:
    """Simulated C1 frames as the live path feeds them: foreground-only, at the input shape."""
    camera = SimulatedCamera(
        CameraConfig(id="c1", kind="simulated", resolution=CAMERA, fps=10.0),
        SimulatorConfig(seed=7, objects_per_m=6.0, realtime=False),
        epoch_ns=0,
    )
    images = [camera.frame_at(seq).image for seq in range(count)]
    settings = ForegroundSettings()
    background = median_background(images, settings)
    batches = []
    for image in images:
        frame, foreground = model_input(image, background, SHAPE, settings)
        batches.append((input_batch(split_foreground(frame, foreground)[0][None]).numpy(), foreground))
    return batches


class _Frames(CalibrationDataReader):
    def __init__(self, inputs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self._inputs = iter(inputs)

    def get_next(self) -> dict | None:
        item = next(self._inputs, None)
        return None if item is None else {"images": item[0]}


def _per_frame_ms(run, runs: int) -> list[float]:
    for _ in range(3):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1e3)
    return times


def _labels(session: onnxruntime.InferenceSession, batch: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    cams = session.run(["cams"], {"images": batch})[0]
    maps = maps_at_input_size(torch.from_numpy(cams), SHAPE)[:, [BEFORE, AFTER]]
    return masks_from_maps(maps, foreground[None], THRESHOLD)


def measure(backbone: str, runs: int, inputs, peak: float, folder: Path) -> dict:
    torch.manual_seed(0)
    model = CamClassifier(backbone, 16, None).eval()
    fp32 = folder / f"{backbone}.onnx"
    export_onnx(model, fp32, SHAPE, THRESHOLD)
    example = torch.from_numpy(inputs[0][0])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    gflop = counter.get_total_flops() / 1e9
    with torch.no_grad():
        torch_ms = _per_frame_ms(lambda: model(example), runs)
    session = onnxruntime.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    ort_ms = _per_frame_ms(lambda: session.run(["cams"], {"images": inputs[0][0]}), runs)
    prepared, int8 = folder / f"{backbone}-pre.onnx", folder / f"{backbone}-int8.onnx"
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(
        str(prepared), str(int8), _Frames(inputs[:8]), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    quantized = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    int8_ms = _per_frame_ms(lambda: quantized.run(["cams"], {"images": inputs[0][0]}), runs)
    agree = [float((_labels(session, b, fg) == _labels(quantized, b, fg)).mean()) for b, fg in inputs[8:]]
    ort_median = statistics.median(ort_ms)
    return {
        "backbone": backbone,
        "input": list(SHAPE),
        "torch_ms": round(statistics.median(torch_ms), 2),
        "torch_fps": round(1e3 / statistics.median(torch_ms), 1),
        "ort_ms": round(ort_median, 2),
        "ort_fps": round(1e3 / ort_median, 1),
        "ort_p99_ms": round(float(np.percentile(ort_ms, 99)), 2),
        "gflop": round(gflop, 2),
        "ort_gflops": round(gflop / (ort_median / 1e3), 1),
        "fraction_of_peak": round(gflop / (ort_median / 1e3) / peak, 3),
        "int8_ms": round(statistics.median(int8_ms), 2),
        "int8_speedup": round(ort_median / statistics.median(int8_ms), 2),
        "int8_label_agreement": round(statistics.mean(agree), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    args = parser.parse_args()
    peaks = measured_peak_gflops()
    peak = max(peaks.values())
    print(f"float32 GFLOP/s on this CPU: {peaks} ({describe_machine()})", flush=True)
    inputs = prepared_inputs(16)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backbone in args.backbones:
            rows.append(measure(backbone, args.runs, inputs, peak, Path(folder)))
            print(rows[-1], flush=True)
    print(f"\n{'backbone':>9} {'torch ms':>9} {'ort ms':>7} {'ort fps':>8} {'GFLOP':>6} {'of peak':>8} "
          f"{'int8 ms':>8} {'int8 agree':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['backbone']:>9} {r['torch_ms']:>9} {r['ort_ms']:>7} {r['ort_fps']:>8} {r['gflop']:>6} "
              f"{r['fraction_of_peak']:>8} {r['int8_ms']:>8} {r['int8_label_agreement']:>10}")  # fmt: skip
    write_results("inference", {"peak_gflops": peaks, "rows": rows})
    write_results("inference_run", run_record(**vars(args)))


if __name__ == "__main__":
    main()
