"""Equal-bit rows: the INT8 Q/DQ graph narrowed to fewer bits (W6A6, W4A4) or to weights only (W8, W4).

ONNX Runtime has no 6-bit (and few 4-bit) kernels, so narrower widths are fake-quantized exactly with the
int8 operators: a b-bit symmetric grid is the int8 grid restricted to [-(2^(b-1) - 1), 2^(b-1) - 1] with
scale = range / (2^(b-1) - 1). Weights are re-quantized from the FP32 initializers (per output channel,
max |w|, as ORT's quantizer does at 8 bits) and stored as int8 values inside the narrower range;
activations keep their calibrated range (lo, hi): the scale grows and a Clip to the range in front of
QuantizeLinear keeps the codes inside the b-bit grid (QuantizeLinear alone saturates at the int8 limits).
Weight-only rows drop the activation QuantizeLinear/DequantizeLinear pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import consumers, producers
from .qdq_rules import WEIGHT_AXIS


@dataclass(frozen=True)
class BitWidth:
    weights: int
    activations: int | None  # None: activations stay float (weight-only)

    @property
    def label(self) -> str:
        return f"W{self.weights}A{self.activations if self.activations else 32}"


SWEEP = (BitWidth(8, 8), BitWidth(6, 6), BitWidth(4, 4), BitWidth(8, None), BitWidth(4, None))


def narrowed(int8_graph: onnx.ModelProto, fp32_graph: onnx.ModelProto, bits: BitWidth) -> onnx.ModelProto:
    """`int8_graph` (quantize_standard's output for `fp32_graph`) fake-quantized at `bits`."""
    if not 2 <= bits.weights <= 8 or (bits.activations is not None and not 2 <= bits.activations <= 8):
        raise ValueError(f"bit widths must be 2..8, got {bits.label}")
    model = onnx.ModelProto.FromString(int8_graph.SerializeToString())
    floats = {i.name: i for i in fp32_graph.graph.initializer}
    _requantize_weights(model, floats, bits.weights)
    if bits.activations is None:
        _drop_activation_qdq(model)
    elif bits.activations < 8:
        _narrow_activations(model, bits.activations)
    return model


def _qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def _requantize_weights(model: onnx.ModelProto, floats: dict, bits: int) -> None:
    inits = {i.name: i for i in model.graph.initializer}
    readers = consumers(model.graph)
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        user = readers[node.output[0]][0]
        source = floats.get(user_weight_name(node.input[0]))
        if source is None:
            raise ValueError(f"no FP32 weight for {node.input[0]}")
        w = numpy_helper.to_array(source).astype(np.float32)
        axis = WEIGHT_AXIS[user.op_type]
        reduce = tuple(a for a in range(w.ndim) if a != axis)
        amax = np.abs(w).max(axis=reduce)
        scale = (np.where(amax > 0, amax, 1.0) / _qmax(bits)).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        codes = np.clip(np.round(w / scale.reshape(shape)), -_qmax(bits), _qmax(bits)).astype(np.int8)
        inits[node.input[0]].CopyFrom(numpy_helper.from_array(codes, node.input[0]))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale, node.input[1]))


def user_weight_name(quantized_name: str) -> str:
    """ORT's QDQ quantizer stores weight W as W_quantized."""
    return quantized_name[:-len("_quantized")] if quantized_name.endswith("_quantized") else quantized_name


def _activation_pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(QuantizeLinear, DequantizeLinear) pairs on activations (the Q reads a non-initializer)."""
    inits = {i.name for i in model.graph.initializer}
    readers = consumers(model.graph)
    return [(q, dq) for q in model.graph.node if q.op_type == "QuantizeLinear" and q.input[0] not in inits
            for dq in readers.get(q.output[0], []) if dq.op_type == "DequantizeLinear"]


def _narrow_activations(model: onnx.ModelProto, bits: int) -> None:
    inits = {i.name: i for i in model.graph.initializer}
    clips = []
    for q in {id(q): q for q, _ in _activation_pairs(model)}.values():
        scale_name = q.input[1]
        amax = np.float32(numpy_helper.to_array(inits[scale_name])) * np.float32(127)
        # the Q and its DQ share the scale initializer: rescale it once, for both
        inits[scale_name].CopyFrom(numpy_helper.from_array(np.array(amax / _qmax(bits), np.float32), scale_name))
        lo, hi, clipped = f"{q.name}_clip_lo", f"{q.name}_clip_hi", f"{q.input[0]}_clipped_{bits}b"
        model.graph.initializer.extend([numpy_helper.from_array(np.array(-amax, np.float32), lo),
                                        numpy_helper.from_array(np.array(amax, np.float32), hi)])
        clips.append((q, helper.make_node("Clip", [q.input[0], lo, hi], [clipped], name=f"{q.name}_clip")))
    for q, clip in clips:
        index = list(model.graph.node).index(q)
        model.graph.node.insert(index, clip)
        q.input[0] = clip.output[0]


def _drop_activation_qdq(model: onnx.ModelProto) -> None:
    pairs = _activation_pairs(model)
    bypass = {dq.output[0]: q.input[0] for q, dq in pairs}
    dropped = {id(n) for pair in pairs for n in pair}
    kept = [n for n in model.graph.node if id(n) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in bypass:
                node.input[i] = bypass[name]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {i for n in kept for i in n.input}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for init in unused:
        model.graph.initializer.remove(init)


def qdq_counts(model: onnx.ModelProto) -> dict:
    """Q and DQ node counts and how many distinct activation tensors pass through a QuantizeLinear."""
    inits = {i.name for i in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    writer = producers(model.graph)
    activations = set()
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            src = writer.get(n.input[0])
            activations.add(src.input[0] if src is not None and src.op_type == "Clip" else n.input[0])
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "quantized_activations": len(activations),
            "quantized_weights": sum(1 for n in model.graph.node if n.op_type == "DequantizeLinear"
                                     and n.input[0] in inits) + _fp32_weight_pairs(model, inits)}


def _fp32_weight_pairs(model: onnx.ModelProto, inits: set) -> int:
    """Weights kept in float behind a Q/DQ pair (ModelOpt's layout): a QuantizeLinear reading an initializer."""
    return sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in inits)

