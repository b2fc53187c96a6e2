"""The attention export form (one ONNX Attention node per head group, windows as heads) and the window-space
blocks that the standard and attention forms trace: parity with the per-call GSWA oracle in PyTorch and with
PyTorch in ONNX Runtime, on tiny models whose key and value widths differ both ways (v padded to k's width,
q and k padded to v's), at sizes that need the reflect padding and the shift mask."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from agileir.export.forms import FORM_SETS, FORMS, form_of, forms_of, onnx_name
from agileir.export.onnx_export import export_onnx, node_counts
from agileir.models import build_model
from agileir.models.config import SRConfig
from agileir.models.gswa import gswa, routed
from conftest import randomized
from test_models import TINY_SWINIR

V_PADDED = SRConfig("agileir", 2, 24, (2,), (4,), 8, 2.0, (8,))  # key dim 8, value dim 6
QK_PADDED = SRConfig("agileir", 3, 24, (2,), (4,), 8, 2.0, (4,))  # key dim 4, value dim 6
CONFIGS = {"v_padded": V_PADDED, "qk_padded": QK_PADDED, "swinir": TINY_SWINIR}


def groups(config: SRConfig) -> int:
    return sum(d * h for d, h in zip(config.depths, config.num_heads))


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def tiny(request):
    config = CONFIGS[request.param]
    return config, randomized(build_model(config)).fuse()


@pytest.mark.parametrize("size", [(57, 86), (16, 16), (5, 3)])
def test_window_space_forward_matches_the_per_call_oracle(tiny, size):
    config, model = tiny
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(size[0]))
    with torch.no_grad():
        windowed = model(x)
        with routed(per_call=gswa):
            oracle = model(x)
    assert float((windowed - oracle).abs().max()) < 2e-5


def test_attention_form_matches_pytorch_in_onnx_runtime(tiny):
    import onnxruntime as ort

    config, model = tiny
    proto = export_onnx(model, "attention")
    assert form_of(proto) == "attention"
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 23
    assert node_counts(proto)["attention_nodes"] == groups(config)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for size in ((19, 23), (8, 8)):
        x = np.random.default_rng(size[0]).random((2, 3, *size), dtype=np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"lr": x})[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4


def test_standard_form_has_no_attention_nodes_and_matches(tiny):
    import onnxruntime as ort

    config, model = tiny
    proto = export_onnx(model, "standard")
    assert form_of(proto) == "standard" and node_counts(proto)["attention_nodes"] == 0
    x = np.random.default_rng(7).random((1, 3, 21, 30), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]
    assert np.abs(got - want).max() < 1e-4


def test_form_list_is_one_constant():
    assert forms_of("both") == ["standard", "plugin"]
    assert forms_of("all") == list(FORMS) and set(FORM_SETS["all"]) == {"standard", "plugin", "attention"}
    assert onnx_name("attention", "fp16") == "model.attention.fp16.onnx"
    assert onnx_name("standard") == "model.onnx"
    with pytest.raises(ValueError):
        forms_of("fused")


def test_attention_node_is_standard_onnx(tiny):
    config, model = tiny
    proto = export_onnx(model, "attention")
    onnx.checker.check_model(proto)
    node = next(n for n in proto.graph.node if n.op_type == "Attention")
    assert node.domain == "" and len(node.input) == 4  # q, k, v and the float additive mask
