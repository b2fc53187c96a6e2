"""The TensorRT parser compatibility check (agileir.export.trt_compat, `agileir check --trt`) on tiny exports of
every form, against the parser of every target; the RTX table against the installed TensorRT-RTX parser."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agileir.export import trt_compat as C
from agileir.export.forms import FORMS
from agileir.export.onnx_export import export_onnx
from agileir.models import build_model
from conftest import randomized
from test_models import TINY_AGILEIR
from test_rtx_plugin import rtx_library  # noqa: F401  (session fixture: libagileir_trt_plugins_rtx.so)

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("jetpack5", "jetpack6.0", "jetpack6", "trt10", "rtx", "latest")
# What today's (`latest`) exports lack on each parser: op type -> the release that added its importer.
MISSING = {
    ("standard", "jetpack5"): {"LayerNormalization"},
    ("plugin", "jetpack5"): {"LayerNormalization"},
    ("attention", "jetpack5"): {"LayerNormalization", "Gelu", "Attention"},
    ("attention", "jetpack6.0"): {"Gelu", "Attention"},
    ("attention", "jetpack6"): {"Attention"},
}


@pytest.fixture(scope="module")
def latest_exports(tmp_path_factory) -> dict[str, Path]:
    model = randomized(build_model(TINY_AGILEIR)).fuse()
    root = tmp_path_factory.mktemp("latest")
    paths = {}
    for form in FORMS:
        paths[form] = root / f"{form}.onnx"
        onnx.save(export_onnx(model, form), str(paths[form]))
    return paths


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("form", FORMS)
def test_latest_exports_against_every_parser(latest_exports, form, target):
    proto = onnx.load(str(latest_exports[form]))
    found = C.incompatibilities(proto, target)
    missing = MISSING.get((form, target), set())
    assert {f.op for f in found if f.kind == "op"} == missing, [f.message for f in found]
    layer_norms = sum(n.op_type == "LayerNormalization" for n in proto.graph.node)
    for f in found:
        if f.op == "LayerNormalization":  # every node is counted, in one line
            assert f.count == layer_norms > 0 and f"x{layer_norms}" in f.line()
    opset_flagged = any(f.kind == "opset" for f in found)
    assert opset_flagged == (form == "attention" and target in ("jetpack5", "jetpack6.0", "jetpack6"))
    plugin_notes = C.notes(proto, target)
    assert bool(plugin_notes) == (form == "plugin")
    if form == "plugin":
        interface = "IPluginV2DynamicExt" if target in ("jetpack5", "jetpack6.0") else "IPluginV3"
        assert interface in plugin_notes[0]


def test_version_strings_pick_the_release_tables():
    assert C.release_of("8.5.2") == C.release_of("jetpack5") == "8.5"
    assert C.release_of("8.6.2") == "8.6" and C.release_of("10.3.0") == C.release_of("jetpack6") == "10.3"
    assert C.release_of("10.1") == "10.0" and C.RELEASES["10.3"].ops == C.RELEASES["10.0"].ops
    assert C.release_of("10.13") == "10.5" and C.release_of("10.14") == "10.14" and C.release_of("10.16") == "10.15"
    assert "Attention" in C.RELEASES[C.release_of("10.14")].ops
    assert "Attention" not in C.RELEASES[C.release_of("10.13.3")].ops
    assert "Gelu" not in C.RELEASES["8.6"].ops and "Gelu" in C.RELEASES["10.0"].ops
    for bad in ("9.0", "8.4", "7", "jetpack4"):
        with pytest.raises(ValueError):
            C.release_of(bad)


def test_rtx_table_is_what_the_installed_rtx_parser_imports():
    trt = pytest.importorskip("tensorrt_rtx")
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    table = C.RELEASES["rtx"].ops
    assert not sorted(op for op in table if not parser.supports_operator(op))
    assert not parser.supports_operator("DeformConv") and "DeformConv" in C.RELEASES["10.15"].ops
    assert not parser.supports_operator(C.OP_TYPE)  # a plugin op: found through the plugin registry only


def _qdq_graph(zero_point: bool, zero: int = 0, per_channel_activation: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(w: int8 -> DQ per channel) -> y, opset 17."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    w_scale = numpy_helper.from_array(np.full(4, 0.1, np.float32), "w_scale")
    w_zero = numpy_helper.from_array(np.zeros(4, np.int8), "w_zero")
    a_scale = numpy_helper.from_array(np.full(3 if per_channel_activation else (), 0.05, np.float32), "a_scale")
    a_zero = numpy_helper.from_array(np.full(3 if per_channel_activation else (), zero, np.int8), "a_zero")
    q_inputs = ["x", "a_scale"] + (["a_zero"] if zero_point else [])
    nodes = [helper.make_node("QuantizeLinear", q_inputs, ["xq"], axis=1),
             helper.make_node("DequantizeLinear", ["xq", *q_inputs[1:]], ["xd"], axis=1),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [w, w_scale, w_zero, a_scale, a_zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_rules_per_release():
    good = _qdq_graph(zero_point=True)
    onnx.checker.check_model(good)
    assert C.incompatibilities(good, "jetpack5") == [] and C.incompatibilities(good, "jetpack6") == []
    no_zero = _qdq_graph(zero_point=False)  # valid ONNX; TensorRT 8.x's importer asserts 3 inputs
    assert {f.kind for f in C.incompatibilities(no_zero, "jetpack5")} == {"qdq"}
    assert all("zero-point input" in f.message for f in C.incompatibilities(no_zero, "8.6"))
    assert C.incompatibilities(no_zero, "jetpack6") == []
    asym = _qdq_graph(zero_point=True, zero=3)
    assert [f.count for f in C.incompatibilities(asym, "rtx")] == [1, 1]  # the Q and its DQ
    per_channel = _qdq_graph(zero_point=True, per_channel_activation=True)
    assert any("per-channel" in f.message for f in C.incompatibilities(per_channel, "jetpack5"))


def test_check_command_exit_codes_and_json(latest_exports, tmp_path):
    def agileir(*args):
        return subprocess.run([sys.executable, "-m", "agileir", "check", *args], capture_output=True, text=True,
                              cwd=REPO, timeout=300)

    r = agileir("--trt", "jetpack5", str(latest_exports["standard"]), "--json", str(tmp_path / "c.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "LayerNormalization x" in r.stdout and "no importer" in r.stdout
    report = json.loads((tmp_path / "c.json").read_text())["reports"][0]
    assert not report["ok"] and report["findings"][0]["op"] == "LayerNormalization"
    r = agileir("--trt", "10.3", "--trt", "rtx", str(latest_exports["plugin"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": ok") == 2
    r = agileir("--trt", "9.0", str(latest_exports["plugin"]))
    assert r.returncode == 2 and r.stderr.startswith("error: no parser table")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    r = agileir("--trt", "rtx", str(tmp_path / "junk.onnx"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


# ---- agileir-export --compat: exact rewrites, checked by the table above ------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("form", FORMS)
def test_compat_rewrite_leaves_nothing_the_target_cannot_import(latest_exports, form, target):
    from agileir.export.compat import to_compat

    proto = onnx.load(str(latest_exports[form]))
    if form == "attention" and target in ("jetpack5", "jetpack6.0", "jetpack6"):
        with pytest.raises(ValueError, match="Attention importer .*10.14"):
            to_compat(proto, target)
        return
    rewritten = to_compat(proto, target)
    onnx.checker.check_model(rewritten)
    assert C.incompatibilities(rewritten, target) == []
    kept = sum(n.op_type == "LayerNormalization" for n in rewritten.graph.node)
    assert (kept == 0) == (target == "jetpack5")  # only 8.5 lacks the importer; others keep the fused op


def _norm_graph(opset: int, approximate: str | None) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "s")
    bias = numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "b")
    nodes = [helper.make_node("LayerNormalization", ["x", "s", "b"], ["h"], name="ln", axis=-2, epsilon=1e-3)]
    nodes.append(helper.make_node("Gelu", ["h"], ["y"], name="g", approximate=approximate) if approximate
                 else helper.make_node("Identity", ["h"], ["y"]))
    graph = helper.make_graph(nodes, "norm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])], [scale, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset,approximate", [(17, None), (18, None), (20, "none"), (20, "tanh")])
def test_decompositions_are_exact(opset, approximate):
    import onnxruntime as ort

    from agileir.export.compat import decompose

    graph = _norm_graph(opset, approximate)
    rewritten = decompose(graph, {"LayerNormalization", "Gelu"})
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "LayerNormalization" not in ops and "Gelu" not in ops
    reduce_means = [n for n in rewritten.graph.node if n.op_type == "ReduceMean"]
    assert all((len(n.input) == 2) == (opset >= 18) for n in reduce_means)  # axes: attribute below 18, input from
    x = (np.random.default_rng(1).standard_normal((2, 5, 8)) * 3 + 1).astype(np.float32)
    want = ort.InferenceSession(graph.SerializeToString()).run(None, {"x": x})[0]
    got = ort.InferenceSession(rewritten.SerializeToString()).run(None, {"x": x})[0]
    assert np.abs(want - got).max() < 1e-5


def test_refusals_name_the_reason():
    from agileir.export.compat import refusal

    assert refusal(("standard", "plugin"), "jetpack5", 17) is None
    assert "--opset 17" in refusal(("standard",), "jetpack5", 18)
    assert "--opset 20" in refusal(("plugin",), "jetpack6", 21)
    assert refusal(("standard",), "jetpack6", 20) is None
    assert "10.14" in refusal(("standard", "attention"), "jetpack6", 17)
    assert refusal(("attention",), "trt10", 17) is None and refusal(("attention",), "rtx", 17) is None


@pytest.fixture(scope="module")
def jetpack5_export(rtx_library, tmp_path_factory):  # noqa: F811
    """agileir-export --compat jetpack5 --fp16 --int8 --target rtx of the tiny AgileIR: six ONNX files + engines."""
    from conftest import saved_model
    from test_rtx_build import agileir

    root = tmp_path_factory.mktemp("jetpack5")
    _, ckpt = saved_model(root, TINY_AGILEIR, randomize=True)
    out = root / "export"
    r = agileir("export", str(ckpt), "-o", str(out), "--compat", "jetpack5", "--fp16", "--int8", "--target", "rtx",
                env={"AGILEIR_TRT_PLUGIN_LIB": str(rtx_library.parent)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout + r.stderr


VARIANT_FILES = ["model", "model.fp16", "model.int8", "model.plugin", "model.plugin.fp16", "model.plugin.int8"]


def test_jetpack5_export_parses_on_8_5_and_builds_with_rtx(jetpack5_export):
    out, log = jetpack5_export
    info = json.loads((out / "export.json").read_text())
    assert info["compat"]["target"] == "jetpack5" and info["compat"]["tensorrt"] == "8.5.2"
    assert info["compat"]["unparsed"] == {}
    for form in ("standard", "plugin"):  # FP32 vs PyTorch in ONNX Runtime, on the 8-bit sample
        assert info["forms"][form]["validation"]["psnr_db"] >= 60.0
    for name in VARIANT_FILES:
        proto = onnx.load(str(out / f"{name}.onnx"))
        assert C.incompatibilities(proto, "8.5.2") == [], name
        assert not any(n.op_type == "LayerNormalization" for n in proto.graph.node)
        sidecar = json.loads((out / f"{name}.json").read_text())  # TensorRT-RTX parsed and built it
        assert (out / f"{name}.plan").stat().st_size == sidecar["engine_bytes"] > 0
        assert (sidecar["network"]["plugin_layers"] > 0) == (".plugin" in name)


def test_build_says_when_the_installed_tensorrt_is_older_than_the_target(jetpack5_export):
    from agileir.runtime.artifacts import onnx_metadata

    out, _ = jetpack5_export
    meta = onnx_metadata(out / "model.plugin.int8.onnx")  # every file carries the target, as export.json does
    assert meta["compat"]["target"] == "jetpack5" and meta["compat"]["tensorrt"] == "8.5.2"
    assert C.older_than_target(meta, "8.5.2.2") is None and C.older_than_target(meta, "10.3.0") is None
    line = C.older_than_target({"compat": {"target": "jetpack6", "tensorrt": "10.3"}}, "8.6.2", "model.onnx")
    assert line.startswith("note: model.onnx was exported for jetpack6 (TensorRT 10.3)") and "\n" not in line
    assert C.older_than_target({"compat": {"target": "latest", "tensorrt": None}}, "8.5.2") is None


def test_fp16_variant_keeps_the_decomposed_layer_norm_in_fp32(jetpack5_export):
    out, _ = jetpack5_export
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(out / "model.fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.value_info, *proto.graph.input]}
    types |= {i.name: i.data_type for i in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    decomposed = [n for n in proto.graph.node if "/LayerNormalization.decomposed/" in n.name and n.op_type != "Cast"]
    norms = sum(n.op_type == "Sqrt" for n in decomposed)
    assert norms > 0 and len(decomposed) == 9 * norms  # ReduceMean Sub Pow ReduceMean Add Sqrt Div Mul Add
    for node in decomposed:
        assert types.get(node.output[0]) == TensorProto.FLOAT, node.name
        for name in node.input:
            assert types.get(name) in (TensorProto.FLOAT, TensorProto.INT64), (node.name, name)
            src = producer.get(name)
            if src is not None and src.op_type == "Cast":  # from the FP16 graph, never its own value rounded
                own = node.name.split("/LayerNormalization.decomposed/")[0] + "/LayerNormalization.decomposed/"
                assert own not in producer.get(src.input[0], src).name, node.name
    assert sum(t == TensorProto.FLOAT16 for t in types.values()) > len(decomposed)  # the rest is FP16


def test_slice_axes_as_a_tensor_from_10_3():
    """operators.md: Slice `axes` must be an initializer; Changelog 10.3: tensor `axes` for Slice."""
    nodes = [helper.make_node("Shape", ["x"], ["axes"], start=0, end=1),
             helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "starts"),
             numpy_helper.from_array(np.array([2], np.int64), "ends")]
    graph = helper.make_graph(nodes, "slice", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    flagged = {t: bool(C.incompatibilities(proto, t)) for t in ("8.5", "8.6", "10.2", "jetpack6", "trt10", "rtx")}
    assert flagged == {"8.5": True, "8.6": True, "10.2": True, "jetpack6": False, "trt10": False, "rtx": False}
