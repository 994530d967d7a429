"""The nightly gate refuses a model that finds nothing, whatever the live model."""

import shutil

import numpy as np
import onnx
from onnx import numpy_helper

from edge.config import GateConfig
from edge.nightly.gate import judge


def _blind_to_illegal(source, target) -> None:
    """A copy of the model whose `before` map is zero everywhere: what a collapsed training leaves
    (its maps are never positive, so nothing is called illegal)."""
    proto = onnx.load(str(source))
    head = next(t for t in proto.graph.initializer if list(t.dims[:1]) + list(t.dims[2:]) == [3, 1, 1])
    weights = numpy_helper.to_array(head).copy()
    weights[0] = 0.0
    head.CopyFrom(numpy_helper.from_array(weights.astype(np.float32), head.name))
    onnx.save(proto, str(target))


def test_a_model_that_calls_nothing_illegal_is_refused_even_with_no_live_model(live_model_file, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(live_model_file.parent, run)
    # its masks differ from the run's PyTorch model's by construction: parity is not what is tested
    gate = GateConfig(max_latency_ms=5000, min_mask_agreement=0.5)
    healthy = judge(run, run / "model.onnx", None, gate, 100.0)
    assert healthy.promote, healthy.reason
    assert healthy.candidate.figures["where_wrong"]["illegal_found"] >= 0.01

    collapsed = tmp_path / "collapsed.onnx"
    _blind_to_illegal(run / "model.onnx", collapsed)
    refused = judge(run, collapsed, None, gate, 100.0)
    assert not refused.promote
    assert refused.reason.startswith("it calls 0.00% of the held-out illegal pixels illegal: a model that")
    # against a live model it is refused as well, even when the margin would let it pass
    lenient = GateConfig(max_latency_ms=5000, min_mask_agreement=0.5, margin=1000.0)
    against_live = judge(run, collapsed, run / "model.onnx", lenient, 100.0)
    assert not against_live.promote and "a model that finds nothing never goes live" in against_live.reason
