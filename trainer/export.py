"""ONNX export of a trained classifier, checked against PyTorch at every export.

The graph takes normalised images (B x 3 x H x W, dynamic batch; H x W the run's input shape) and
returns `cams` (ReLU'd class maps, B x 3 x H/stride x W/stride) and `logits` (B x 3). Everything the
live path needs to use it rides along as metadata: classes, input height and width, normalisation,
threshold (and the object check's), the foreground rule; the stride too, for tools that read the
maps at their own size (the live path upsamples them to the input size whatever it is).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F
from torch import nn

from trainer.errors import ExportError
from trainer.model import CLASSES, IMAGENET_MEAN, IMAGENET_STD, CamClassifier

OPSET = 17
PARITY_TOLERANCE = 1e-3


class _ExportedGraph(nn.Module):
    def __init__(self, model: CamClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.model(images)
        return F.relu(maps), CamClassifier.logits(maps)


def export_onnx(
    model: CamClassifier, path: Path, shape: tuple[int, int], threshold: float, extra: dict | None = None
) -> float:
    """Write the ONNX file and return the max abs difference to PyTorch on a random batch.

    Written beside `path` and renamed onto it once complete and checked: a crash or a failed parity
    check never leaves a half or wrong model where a registry or a live path may read it."""
    model = model.cpu().eval()
    graph = _ExportedGraph(model).eval()
    example = torch.randn(2, 3, *shape)
    final, path = Path(path), Path(path).with_name(Path(path).name + ".partial")
    torch.onnx.export(
        graph,
        (example,),
        str(path),
        input_names=["images"],
        output_names=["cams", "logits"],
        dynamic_axes={"images": {0: "batch"}, "cams": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    metadata = {
        "classes": json.dumps(list(CLASSES)),
        "input_height": str(shape[0]),
        "input_width": str(shape[1]),
        "mean": json.dumps(IMAGENET_MEAN),
        "std": json.dumps(IMAGENET_STD),
        "output_stride": str(model.output_stride),
        "backbone": model.backbone_name,
        "threshold": str(threshold),
        **{k: str(v) for k, v in (extra or {}).items()},
    }
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    try:
        difference = parity(graph, path, shape)
    except ExportError as error:
        path.unlink(missing_ok=True)
        raise ExportError(str(error).replace(str(path), str(final))) from None
    path.replace(final)
    return difference


@torch.no_grad()
def parity(graph: nn.Module, path: Path, shape: tuple[int, int]) -> float:
    batch = torch.randn(3, 3, *shape, generator=torch.Generator().manual_seed(0))
    expected = [t.numpy() for t in graph(batch)]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"images": batch.numpy()})
    difference = max(float(np.abs(e - a).max()) for e, a in zip(expected, actual, strict=True))
    if difference > PARITY_TOLERANCE:
        raise ExportError(f"{path}: ONNX differs from PyTorch by {difference:.2e} (> {PARITY_TOLERANCE})")
    return difference


def read_metadata(path: Path) -> dict[str, str]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)
