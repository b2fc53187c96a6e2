"""ONNX export: every form against PyTorch in ONNX Runtime, dynamic shapes, graph structure."""
import json

import numpy as np
import onnx
import pytest
import torch

from agileir.export.forms import FORMS
from agileir.export.onnx_export import ExportOptions, export_onnx, node_counts
from agileir.io.images import read_image
from agileir.runtime.pytorch import torch_upscaler
from agileir.models import build_model, load_model, preset
from agileir.models.gswa_node import DOMAIN, OP_TYPE
from agileir.models.load import ModelLoadError
from agileir.runtime.ort import create_session
from agileir.runtime.parity import output_parity
from conftest import randomized
from test_models import TINY_AGILEIR, TINY_SWINIR

PSNR_MIN_DB, MAX_ABS = 60.0, 2e-4


def parity(session, model, lr):
    name = session.get_inputs()[0].name
    return output_parity(lambda batch: session.run(None, {name: batch})[0], torch_upscaler(model), lr)


def attention_ops(proto):
    return [n for n in proto.graph.node if "/attn/" in n.name]


@pytest.mark.parametrize("config", [TINY_AGILEIR, TINY_SWINIR], ids=["agileir", "swinir"])
@pytest.mark.parametrize("form", FORMS)
def test_one_file_serves_all_sizes(config, form):
    model = randomized(build_model(config)).fuse()
    session = create_session(export_onnx(model, form))
    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (20, 28), (33, 17), (1, 1)]:  # window multiples and not, down to 1x1
        check = parity(session, model, rng.random((h, w, 3), dtype=np.float32))
        assert check["psnr_db"] >= PSNR_MIN_DB and check["max_abs_err"] <= MAX_ABS, (h, w, check)


def test_batch_is_dynamic():
    model = randomized(build_model(TINY_AGILEIR)).fuse()
    session = create_session(export_onnx(model, "plugin"))
    x = torch.rand(3, 3, 18, 21)
    out = session.run(None, {"lr": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(out - model(x).numpy()).max() <= MAX_ABS


def test_plugin_graph_has_no_window_machinery():
    model = randomized(build_model(TINY_AGILEIR)).fuse()
    proto = export_onnx(model, "plugin")
    ops = {n.op_type for n in attention_ops(proto)}
    assert ops <= {"Transpose", "Gather", "Conv", "Add", OP_TYPE, "Concat", "Relu"}, ops  # NHWC<->NCHW only
    assert not any(n.op_type == "ScatterND" for n in proto.graph.node)
    groups = sum(d * h for d, h in zip(TINY_AGILEIR.depths, TINY_AGILEIR.num_heads))
    # each group's channel chunk is one Gather (a Split costs TensorRT's parser shape layers per output)
    assert sum(n.op_type == "Gather" for n in attention_ops(proto)) == groups
    concats = [n for n in attention_ops(proto) if n.op_type == "Concat"]
    assert len(concats) == sum(TINY_AGILEIR.depths)  # only the concat of the head groups' outputs
    nodes = [n for n in proto.graph.node if n.op_type == OP_TYPE]
    assert len(nodes) == sum(d * h for d, h in zip(TINY_AGILEIR.depths, TINY_AGILEIR.num_heads))
    node = nodes[TINY_AGILEIR.num_heads[0]]  # first group of the first shifted block
    assert node.domain == DOMAIN and len(node.input) == 4 and len(node.output) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["plugin_namespace"] == b"agileir" and attrs["plugin_version"] == b"1"
    assert attrs["window_size"] == 8 and attrs["shift_size"] == 4 and attrs["key_dim"] == 6
    assert abs(attrs["scale"] - 6 ** -0.5) < 1e-7


@pytest.mark.parametrize("config", [TINY_AGILEIR, TINY_SWINIR], ids=["agileir", "swinir"])
def test_plugin_form_takes_channels_by_gather(config):
    """Head groups' channels by constant-index Gather: TensorRT's parser turns every Split or Slice output on a
    dynamic shape into a slice plus tens of shape layers (SwinIR-light's plugin network: 14,198 layers, 2,040
    with gathers)."""
    proto = export_onnx(randomized(build_model(config)).fuse(), "plugin")
    ops = [n.op_type for n in attention_ops(proto)]
    assert "Split" not in ops and "Slice" not in ops, sorted(set(ops))
    per_group = 1 if config.arch == "agileir" else 3  # the cascade's chunk; SwinIR: q, k and v of the head
    assert ops.count("Gather") == per_group * sum(d * h for d, h in zip(config.depths, config.num_heads))


def test_standard_graph_bakes_no_window_constants():
    model = randomized(build_model(TINY_AGILEIR)).fuse()
    proto = export_onnx(model, "standard")
    assert not any(n.domain == DOMAIN for n in proto.graph.node)
    n = TINY_AGILEIR.window_size ** 2
    for init in proto.graph.initializer:
        dims = list(init.dims)
        assert not (len(dims) == 3 and dims[1:] == [n, n]), f"per-window mask baked in: {init.name}"
    counts = node_counts(proto)
    assert counts["max_per_block"] < 250  # shared window bookkeeping, not a copy per head group


@pytest.mark.parametrize("form", ["standard", "attention"])
def test_shape_bookkeeping_is_computed_once_per_graph(form):
    """Every block reads the padded size from one Shape subgraph: deeper models add no shape arithmetic."""
    def shape_nodes(depths):
        config = TINY_AGILEIR.replace(depths=depths, num_heads=(2,) * len(depths), key_dims=(6,) * len(depths))
        proto = export_onnx(randomized(build_model(config)).fuse(), form)
        return sum(n.op_type in ("Shape", "Div", "Unsqueeze") and "/attn/" in n.name
                   for n in proto.graph.node)
    assert shape_nodes((2,)) == shape_nodes((4, 2))


@pytest.mark.parametrize("form", FORMS)
def test_constant_operands_have_the_rank_they_broadcast_to(form):
    """TensorRT's parser adds a broadcast layer for every lower-rank constant operand; the export leaves none
    (elementwise ops, LayerNormalization scale/bias, Attention masks)."""
    proto = export_onnx(randomized(build_model(TINY_AGILEIR)).fuse(), form)
    inits = {i.name: len(i.dims) for i in proto.graph.initializer}
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in proto.graph.value_info}
    checked = 0
    for node in proto.graph.node:
        if node.op_type in ("Add", "Mul", "Sub", "Div"):
            want, slots = ranks.get(node.output[0]), range(len(node.input))
        elif node.op_type == "LayerNormalization":
            want, slots = ranks.get(node.input[0], 4), (1, 2)
        elif node.op_type == "Attention":
            want, slots = 4, (3,)
        else:
            continue
        for i in slots:
            if node.input[i] in inits and want:
                assert inits[node.input[i]] == want, (node.name, node.input[i])
                checked += 1
    assert checked > 10
    if form == "attention":  # traced at opset 20: GELU is one node
        ops = {n.op_type for n in proto.graph.node}
        assert "Gelu" in ops and "Erf" not in ops


def test_static_shape_export():
    model = randomized(build_model(TINY_SWINIR)).fuse()
    proto = export_onnx(model, "standard", ExportOptions(static_shape=(1, 3, 24, 16)))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 24, 16]


def test_export_cli_writes_annotated_files(tmp_path):
    from click.testing import CliRunner

    from agileir.cli import main
    from agileir.models.load import save_safetensors

    ckpt = tmp_path / "tiny.safetensors"
    save_safetensors(randomized(build_model(TINY_SWINIR)), ckpt)
    out = tmp_path / "exp"
    r = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(out)])
    assert r.exit_code == 0, r.output
    info = json.loads((out / "export.json").read_text())
    for key in ("config", "scale", "window", "opset", "toolkit_version", "source_checkpoint", "forms"):
        assert key in info
    assert info["forms"]["plugin"]["validation"]["passed"]
    assert info["forms"]["standard"]["node_counts"]["total"] > info["forms"]["plugin"]["node_counts"]["total"]
    for form, name in (("standard", "model.onnx"), ("plugin", "model.plugin.onnx")):
        proto = onnx.load(str(out / name))
        onnx.checker.check_model(proto)
        meta = {p.key: p.value for p in proto.metadata_props}
        assert json.loads(meta["scale"]) == 3 and meta["form"] == form
        assert json.loads(meta["source_checkpoint"])["sha256"] == info["source_checkpoint"]["sha256"]
    r = CliRunner().invoke(main, ["infer", str(out / "model.onnx"), str(tmp_path / "none.png")])
    assert r.exit_code == 2


@pytest.fixture(scope="module")
def real_model():
    """The bundled AgileIR-light x4 (random-initialised preset if this install has no bundled weights)."""
    try:
        return load_model(fuse=True).model
    except ModelLoadError:
        torch.manual_seed(0)
        return randomized(build_model(preset("agileir-light-x4"))).fuse()


@pytest.mark.parametrize("form", ["standard", "plugin"])
def test_agileir_light_x4_parity_on_set5(real_model, set5, form):
    session = create_session(export_onnx(real_model, form))
    sizes = set()
    for name in ("birdx4", "womanx4", "headx4"):  # 72x72, 57x86 (not window multiples), 70x70
        lr = read_image(set5 / "LR_bicubic" / "X4" / f"{name}.png").to_rgb()
        sizes.add(lr.shape[:2])
        check = parity(session, real_model, lr)
        assert check["psnr_db"] >= PSNR_MIN_DB, (name, check)
        assert check["max_abs_err"] <= MAX_ABS, (name, check)
    assert len(sizes) == 3
