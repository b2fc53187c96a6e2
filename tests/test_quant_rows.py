"""Equal-bit rows (exact fake quantization with int8 Q/DQ), INT8 attention products, executed peers: each on
a tiny model, seconds each."""
import importlib.util

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from agileir.calibration import variants as V
from agileir.calibration.attention import attention_int8
from agileir.calibration.bits import SWEEP, BitWidth, narrowed, qdq_counts
from agileir.calibration.peers import run_peer
from agileir.calibration.qdq_rules import attention_products
from agileir.quality.metrics import psnr
from test_calibration import exports, run

X = np.random.default_rng(0).random((1, 3, 20, 28), dtype=np.float32)


@pytest.fixture(scope="module")
def tiny(calib_images_2):
    e = exports("agileir")
    cal = V.calibrate(e["standard"], calib_images_2, "max")
    return e["standard"], cal, V.int8_forms({"standard": e["standard"]}, cal)["standard"]


@pytest.fixture(scope="module")
def calib_images_2():
    from agileir.calibration.dataset import load_images

    return load_images()[:2]


def _fake_quant(x, amax, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = np.float32(amax / qmax)
    return np.clip(np.round(x / scale), -qmax, qmax).astype(np.float32) * scale


def test_narrowed_graph_is_exact_fake_quantization(tiny):
    """W4A4: every weight code within +-7 with scale max|w| / 7 per output channel; an activation Q/DQ pair,
    run on its own in ORT, equals numpy's 4-bit fake quantization of the same values."""
    fp32, _, int8 = tiny
    w4 = narrowed(int8, fp32, BitWidth(4, 4))
    inits = {i.name: numpy_helper.to_array(i) for i in w4.graph.initializer}
    floats = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    weight_dq = [n for n in w4.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    for dq in weight_dq:
        codes, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert np.abs(codes).max() <= 7
        w = floats[dq.input[0][:-len("_quantized")]]
        shape = [1] * w.ndim
        shape[0 if w.ndim == 4 else 1] = -1
        assert np.abs(codes * scale.reshape(shape) - w).max() <= scale.max() / 2 + 1e-6
    clips = {n.output[0]: n for n in w4.graph.node if n.op_type == "Clip"}
    q = next(n for n in w4.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in clips)
    clip = clips[q.input[0]]
    dq = next(n for n in w4.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    amax = float(inits[clip.input[2]])
    sub = onnx.helper.make_model(onnx.helper.make_graph(
        [clip, q, dq], "pair", [onnx.helper.make_tensor_value_info(clip.input[0], onnx.TensorProto.FLOAT, [64])],
        [onnx.helper.make_tensor_value_info(dq.output[0], onnx.TensorProto.FLOAT, [64])],
        [i for i in w4.graph.initializer if i.name in set(clip.input) | set(q.input)]), opset_imports=w4.opset_import)
    import onnxruntime as ort

    x = np.linspace(-1.5 * amax, 1.5 * amax, 64, dtype=np.float32)
    got = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {clip.input[0]: x})[0]
    np.testing.assert_allclose(got, _fake_quant(x, amax, 4), rtol=0, atol=1e-6)


def test_sweep_loses_more_with_fewer_bits(tiny):
    fp32, _, int8 = tiny
    ref = np.clip(run(fp32, X), 0, 1)
    scores = {b.label: psnr(np.clip(run(narrowed(int8, fp32, b), X), 0, 1), ref) for b in SWEEP}
    assert scores["W8A8"] == psnr(np.clip(run(int8, X), 0, 1), ref)  # re-quantizing at 8 bits changes nothing
    assert scores["W8A8"] > scores["W6A6"] + 3 > scores["W4A4"] + 6
    assert scores["W8A32"] > scores["W4A32"] + 6 and scores["W8A32"] >= 40.0
    assert qdq_counts(narrowed(int8, fp32, BitWidth(4, None)))["quantize_linear"] == 0


def test_attention_products_get_int8_inputs(tiny, calib_images_2):
    fp32, cal, int8 = tiny
    products = attention_products(fp32)
    assert len(products) > 0 and len(products) % 2 == 0  # q.k^T and attn.v of every attention head group
    graph = attention_int8(fp32, cal, [im.rgb for im in calib_images_2])
    writer = {o: n for n in graph.graph.node for o in n.output}
    for node in (n for n in graph.graph.node if n.name in {p.name for p in products}):
        assert [writer[i].op_type for i in node.input[:2]] == ["DequantizeLinear"] * 2, node.name
    ref = np.clip(run(fp32, X), 0, 1)
    assert psnr(np.clip(run(graph, X), 0, 1), ref) >= 35.0


def test_ort_quantize_static_runs_on_the_graph(tiny, calib_images_2):
    fp32 = tiny[0]
    result = run_peer("ort-percentile", fp32, [im.rgb for im in calib_images_2])
    assert result.skipped is None and result.seconds > 0
    counts = qdq_counts(result.graph)
    assert counts["quantize_linear"] > 0 and counts["quantized_weights"] > 0
    assert psnr(np.clip(run(result.graph, X), 0, 1), np.clip(run(fp32, X), 0, 1)) >= 30.0


def test_modelopt_row_is_skipped_with_a_reason_when_absent(tiny, calib_images_2, monkeypatch):
    if importlib.util.find_spec("modelopt") is not None:
        pytest.skip("modelopt imports here: the row runs instead (test_modelopt_quantizes_the_graph)")
    monkeypatch.delenv("AGILEIR_MODELOPT_PYTHON", raising=False)
    result = run_peer("modelopt-int8", tiny[0], [im.rgb for im in calib_images_2])
    assert result.graph is None and "AGILEIR_MODELOPT_PYTHON" in result.skipped
    monkeypatch.setenv("AGILEIR_MODELOPT_PYTHON", "/nonexistent/python")
    broken = run_peer("modelopt-int8", tiny[0], [im.rgb for im in calib_images_2])
    assert broken.graph is None and "FileNotFoundError" in broken.skipped


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None and not __import__("os").environ.get(
    "AGILEIR_MODELOPT_PYTHON"), reason="needs nvidia-modelopt (here or in $AGILEIR_MODELOPT_PYTHON)")
def test_modelopt_quantizes_the_graph(tiny, calib_images_2):
    fp32 = tiny[0]
    result = run_peer("modelopt-int8", fp32, [im.rgb for im in calib_images_2])
    assert result.skipped is None, result.skipped
    assert qdq_counts(result.graph)["quantize_linear"] > 0
    assert psnr(np.clip(run(result.graph, X), 0, 1), np.clip(run(fp32, X), 0, 1)) >= 30.0


def _status_bytes(key: str) -> int:
    import re

    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def _added_peak(fn):
    """Run fn(); the peak resident memory it added to this process (Linux: /proc/self/clear_refs resets
    the high-water mark)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to measure peak memory")
    before = _status_bytes("VmRSS")
    value = fn()
    return value, _status_bytes("VmHWM") - before


@pytest.fixture(scope="module")
def calib_images_8():
    from agileir.calibration.dataset import load_images

    return [im.rgb for im in load_images()[:8]]


@pytest.mark.parametrize("method", ["Entropy", "MinMax"])
def test_ort_peer_calibrates_in_strides_within_its_estimate(tiny, calib_images_8, method):
    """ORT's histogram calibrators keep every calibrated tensor of the images of one collect_data call (MinMax
    keeps them alive in its session until its reductions run): the peer hands the 8 images over one at a
    time (8 ranges, all consumed), so the memory it adds stays near one image's tensors (all 8 at once:
    ~8x) and under the estimate checked against the budget."""
    import onnxruntime.quantization  # noqa: F401  (its import is not the peer's memory)
    from agileir.calibration.peers import ORT_STRIDE, _ort_estimate, ort_quantize_static

    fp32 = tiny[0]
    estimate = _ort_estimate(method)(fp32, calib_images_8)
    assert ORT_STRIDE == 1 and estimate.stride == 1 and estimate.tensors > 50
    (result, reader), added = _added_peak(lambda: ort_quantize_static(fp32, calib_images_8, method))
    assert reader.strides == [(i, i + 1) for i in range(8)] and reader.next == 8
    assert result.settings["extra_options"]["CalibStridedMinMax"] == 1
    assert added < 3.5 * estimate.per_image, (added, estimate)  # 8 images held at once: > 8 x per_image
    assert added < estimate.bytes, (added, estimate)
    assert psnr(np.clip(run(result.graph, X), 0, 1), np.clip(run(fp32, X), 0, 1)) >= 30.0


def test_peer_over_the_memory_budget_is_a_skipped_row_with_its_reason(tiny, calib_images_8):
    from agileir.calibration.peers import _ort_estimate

    fp32 = tiny[0]
    need = _ort_estimate("Entropy")(fp32, calib_images_8).bytes
    result = run_peer("ort-entropy", fp32, calib_images_8, budget=need - 1)
    assert result.graph is None and result.seconds < 20
    assert "over the" in result.skipped and "memory budget" in result.skipped and "calibrated tensors" in result.skipped
    assert result.memory["estimate_bytes"] == need and result.memory["budget_bytes"] == need - 1
    assert run_peer("ort-minmax", fp32, calib_images_8, budget=need - 1).skipped.startswith("calibrating needs")


def test_toolkit_calibrators_stream_one_image_at_a_time(tiny, calib_images_8):
    """activation_ranges keeps one image's tensors at a time (both passes are generators over the images):
    over 8 images it adds less than its one-image estimate (session + one image's tensors, held twice)."""
    from agileir.calibration.calibrators import activation_ranges
    from agileir.calibration.memory import pass_estimate

    fp32 = tiny[0]
    tensors = sorted(V.readers_of(fp32))
    estimate = pass_estimate(fp32, tensors, calib_images_8)
    activation_ranges(fp32, tensors, calib_images_8[:1], "max")  # imports and session code outside the measure
    for method in ("max", "percentile"):
        ranges, added = _added_peak(lambda: activation_ranges(fp32, tensors, calib_images_8, method))
        assert len(ranges) == len(tensors)
        assert added < estimate.bytes < 8 * estimate.per_image, (method, added, estimate)


def test_spilled_graphs_hold_variants_on_disk_and_clean_up(tiny):
    """The calibration report's variant graphs live in a private temporary folder, not in memory."""
    from pathlib import Path

    from agileir.calibration.memory import SpilledGraphs

    graph = tiny[0]
    with SpilledGraphs() as graphs:
        graphs["fp32"] = graph
        graphs["copy"] = graph
        graphs["fp32"] = graph  # rewritten in place, not a second file
        folder = Path(graphs._dir.name)
        assert sorted(p.name for p in folder.iterdir()) == ["0.onnx", "1.onnx"]
        assert list(graphs) == ["fp32", "copy"] and graphs["copy"].SerializeToString() == graph.SerializeToString()
        del graphs["copy"]
        assert len(graphs) == 1 and not (folder / "1.onnx").exists()
    assert not folder.exists()
