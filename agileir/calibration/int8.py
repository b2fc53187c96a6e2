"""INT8 variant with explicit QuantizeLinear/DequantizeLinear, per TensorRT's explicit-quantization rules.

The standard form goes through onnxruntime.quantization's QDQ quantizer (what `quantize_static` runs
after calibrating) with precomputed ranges: symmetric int8, per-output-channel weights stored as int8
initializers behind DequantizeLinear, per-tensor activations, float biases (TensorRT fuses them), and
Q/DQ only on the inputs of the selected Conv/MatMul nodes. ORT's calibrator cannot run the plugin form's
custom op, so the plugin form receives the standard form's Q/DQ: its Conv/MatMul nodes carry the same
module-scoped names, and its weights are the same tensors.
"""
from __future__ import annotations

import logging

import numpy as np
import onnx

from .qdq_rules import QUANTIZED_OPS, attention_products, quantizable_nodes

EXTRA_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
    "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
}


def quantize_standard(standard: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                      attention: bool = False) -> onnx.ModelProto:
    """Q/DQ graph of the standard form; `ranges` maps each quantized node's activation input to (lo, hi).
    `attention`: also quantize both inputs of the attention matrix products (attention.py)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    extra = attention_products(standard) if attention else []
    nodes = [n.name for n in quantizable_nodes(standard) + extra]
    needed = {n.input[0] for n in quantizable_nodes(standard)} | {i for n in extra for i in n.input[:2]}
    missing = sorted(needed - set(ranges))
    if missing:
        raise ValueError(f"no calibrated range for {len(missing)} activation(s), e.g. {missing[0]}")
    data = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        for name, (lo, hi) in ranges.items()})
    model = onnx.ModelProto.FromString(standard.SerializeToString())
    quantizer = QDQQuantizer(model, True, False, QuantType.QInt8, QuantType.QInt8, data, nodes, [],
                             list(QUANTIZED_OPS), dict(EXTRA_OPTIONS))
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs a pre-processing hint as a warning
    try:
        quantized = quantizer.quantize_model()
    finally:
        logging.getLogger().setLevel(level)
    del quantized.metadata_props[:]
    return _toposorted(quantized)


def transplant_qdq(quantized_standard: onnx.ModelProto, plugin: onnx.ModelProto) -> onnx.ModelProto:
    """The plugin form with the Q/DQ nodes of the quantized standard form, matched by node name."""
    import onnx_graphsurgeon as gs

    source = gs.import_onnx(quantized_standard)
    target = gs.import_onnx(plugin)
    by_name = {n.name: n for n in source.nodes}
    pairs: dict[str, gs.Variable] = {}
    for node in target.nodes:
        if node.name not in {n.name for n in quantizable_nodes(plugin)}:
            continue
        src = by_name.get(node.name)
        if src is None:
            raise ValueError(f"{node.name} is not in the quantized standard form")
        act_dq, w_dq = (_producer(src.inputs[i], "DequantizeLinear", node.name) for i in (0, 1))
        q = _producer(act_dq.inputs[0], "QuantizeLinear", node.name)
        x = node.inputs[0]
        if x.name not in pairs:
            scale, zero = _copy(q.inputs[1]), _copy(q.inputs[2])
            q_out = gs.Variable(f"{x.name}_QuantizeLinear_Output", np.int8, x.shape)
            pairs[x.name] = gs.Variable(f"{x.name}_DequantizeLinear_Output", np.float32, x.shape)
            target.nodes += [gs.Node("QuantizeLinear", f"{x.name}_QuantizeLinear", inputs=[x, scale, zero],
                                     outputs=[q_out]),
                             gs.Node("DequantizeLinear", f"{x.name}_DequantizeLinear",
                                     inputs=[q_out, scale, zero], outputs=[pairs[x.name]])]
        node.inputs[0] = pairs[x.name]
        weight, scale, zero = (_copy(t) for t in w_dq.inputs[:3])
        _check_same_weight(node.inputs[1], weight, scale, dict(w_dq.attrs).get("axis", 1))
        w_out = gs.Variable(f"{node.inputs[1].name}_DequantizeLinear_Output", np.float32, node.inputs[1].shape)
        target.nodes.append(gs.Node("DequantizeLinear", f"{node.inputs[1].name}_DequantizeLinear",
                                    attrs=dict(w_dq.attrs), inputs=[weight, scale, zero], outputs=[w_out]))
        node.inputs[1] = w_out
    return _exported(target, plugin)


def _toposorted(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    return _exported(gs.import_onnx(proto), proto)


def _exported(graph, like: onnx.ModelProto) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version, out.producer_name, out.producer_version = like.ir_version, like.producer_name, like.producer_version
    del out.opset_import[:]
    out.opset_import.extend(like.opset_import)
    return onnx.shape_inference.infer_shapes(out)


def _producer(tensor, op: str, where: str):
    node = tensor.inputs[0] if tensor.inputs else None
    if node is None or node.op != op:
        raise ValueError(f"{where}: expected a {op} on {tensor.name} in the quantized standard form")
    return node


def _copy(tensor):
    import onnx_graphsurgeon as gs

    return gs.Constant(tensor.name, np.array(tensor.values))


def _check_same_weight(float_weight, q_weight, scale, axis: int) -> None:
    """The plugin form's weight must round to the standard form's int8 weight (same tensor, same scales)."""
    w = np.asarray(float_weight.values, np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    s = np.asarray(scale.values, np.float32).reshape(shape)
    if w.shape != q_weight.values.shape or np.abs(w / s - q_weight.values).max() > 0.5 + 1e-3:
        raise ValueError(f"weight {float_weight.name} differs between the standard and plugin forms")
