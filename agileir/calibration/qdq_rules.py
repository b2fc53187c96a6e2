"""Which nodes the INT8 variant quantizes, and a checker for TensorRT's explicit-quantization rules.

Quantized: every Conv (1x1 and 3x3) and every MatMul with a constant weight (MLP fc1/fc2, SwinIR's
qkv/proj), in both export forms. Not quantized: the GSWA op -- the plugin node, or in the standard form
the ops that decompose it (the depthwise conv on q, q.k^T, softmax, attn.v), which the exporter scopes
directly under the attention module, with no submodule of their own.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..models.gswa_node import OP_TYPE, is_gswa_node
from .graph import consumers, producers

QUANTIZED_OPS = ("Conv", "MatMul")
GSWA_SCOPE = re.compile(r"/attn/(Conv|MatMul)(_\d+)?$")
FLOAT_ONLY = ("Softmax", OP_TYPE)
WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}  # output channels: Conv (O, I, kh, kw), MatMul (K, N)


def quantizable_nodes(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Conv/MatMul outside GSWA with a constant weight: an initializer or its DequantizeLinear (the exporter
    folds every constant-only node, the Linear weights' Transposes included)."""
    inits = {i.name for i in proto.graph.initializer}
    constant = set(inits) | {n.output[0] for n in proto.graph.node
                             if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    return [n for n in proto.graph.node
            if n.op_type in QUANTIZED_OPS and len(n.input) > 1 and n.input[1] in constant
            and not GSWA_SCOPE.search(n.name)]


def attention_products(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes of the decomposed GSWA whose two inputs are both activations."""
    constant = {i.name for i in proto.graph.initializer}
    return [n for n in proto.graph.node if n.op_type == "MatMul" and GSWA_SCOPE.search(n.name)
            and not constant & set(n.input[:2])]


def activation_inputs(proto: onnx.ModelProto) -> dict[str, str]:
    """node name -> the activation tensor it reads (input 0)."""
    return {n.name: n.input[0] for n in quantizable_nodes(proto)}


def qdq_violations(proto: onnx.ModelProto, expected_nodes: set[str] | None = None) -> list[str]:
    """Breaches of the Q/DQ rules; empty when the graph obeys them.

    Symmetric int8 (zero points 0), scales and zero points as initializers, weights per output channel
    on the right axis, activations per tensor, Q/DQ only on the inputs 0 and 1 of the quantized
    Conv/MatMul nodes (every one of them, or exactly `expected_nodes`), none next to Softmax or GSWA."""
    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer, readers = producers(graph), consumers(graph)
    problems: list[str] = []
    quantized: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        where = f"{node.op_type} {node.name}"
        if len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
            problems.append(f"{where}: scale and zero point must be initializers")
            continue
        scale, zero = inits[node.input[1]], inits[node.input[2]]
        if scale.dtype != np.float32 or not np.all(scale > 0):
            problems.append(f"{where}: scale must be positive float32")
        if zero.dtype != np.int8 or np.any(zero != 0):
            problems.append(f"{where}: zero point must be int8 0 (symmetric)")
        src = producer.get(node.input[0])
        if src is not None and src.op_type in FLOAT_ONLY:
            problems.append(f"{where}: quantizes the output of {src.op_type}")
        if node.op_type == "QuantizeLinear":
            if scale.size != 1:
                problems.append(f"{where}: activation scale must be per tensor")
            continue
        for user in readers.get(node.output[0], []):
            if user.op_type not in QUANTIZED_OPS or list(user.input).index(node.output[0]) > 1:
                problems.append(f"{where}: feeds {user.op_type} {user.name}, only Conv/MatMul inputs 0-1 may be quantized")
                continue
            quantized.add(user.name)
            if list(user.input).index(node.output[0]) == 1:
                problems += _weight_problems(where, node, user, inits, scale)
            elif scale.size != 1:
                problems.append(f"{where}: activation scale must be per tensor")
            elif src is None or src.op_type != "QuantizeLinear":
                problems.append(f"{where}: activation DQ must follow a QuantizeLinear")
    wanted = expected_nodes if expected_nodes is not None else {n.name for n in quantizable_nodes(proto)}
    for node in graph.node:
        if node.name in wanted:
            sources = [producer.get(node.input[i]) for i in (0, 1)]
            if any(s is None or s.op_type != "DequantizeLinear" for s in sources):
                problems.append(f"{node.op_type} {node.name}: input 0 and weight must both come from DequantizeLinear")
    for name in sorted(quantized - wanted):
        problems.append(f"{name}: quantized but not one of the Conv/MatMul layers to quantize")
    for node in graph.node:
        if node.op_type in FLOAT_ONLY or is_gswa_node(node):
            if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input):
                problems.append(f"{node.op_type} {node.name}: reads a DequantizeLinear output")
    return problems


def _weight_problems(where, dq, user, inits, scale) -> list[str]:
    weight = inits.get(dq.input[0])
    if weight is None or weight.dtype != np.int8:
        return [f"{where}: weight must be an int8 initializer"]
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    want = WEIGHT_AXIS[user.op_type]
    if axis != want or scale.size != weight.shape[want]:
        return [f"{where}: {user.op_type} weight scale must be per output channel (axis {want}, "
                f"{weight.shape[want]} scales), got axis {axis} with {scale.size}"]
    return []


def qdq_summary(proto: onnx.ModelProto) -> dict:
    ops = [n.op_type for n in proto.graph.node]
    int8_bytes = sum(numpy_helper.to_array(i).nbytes for i in proto.graph.initializer
                     if i.data_type == TensorProto.INT8)
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "quantized_layers": len(quantizable_nodes(proto)), "int8_weight_bytes": int8_bytes}
