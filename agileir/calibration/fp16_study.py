"""Which op types must stay FP32 in the FP16 variant: PSNR of FP16 vs FP32 output, blocking one op type
at a time.

Two measurements per block list:
* `ort_fp16`: the FP16 graph itself in ONNX Runtime CPU. On x86, ORT has FP16 kernels for few ops and
  runs the rest in FP32 behind Casts it inserts (and partly merges), so this understates FP16 error.
* `fp16_storage`: the FP32 graph with every value an FP16 graph would hold in FP16 rounded to FP16
  (weights, and each output of a non-blocked op), run with graph optimisations off so no rounding is
  optimised away. Arithmetic inside an op stays FP32, as in TensorRT's FP16 kernels with FP32
  accumulation; overflow of an intermediate above 65504 shows up as inf/NaN.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..quality.metrics import psnr
from ..models.gswa_node import is_gswa_node
from .fp16 import to_fp16
from .graph import consumers

# Op types that do floating-point arithmetic in these graphs (data movement and index ops excluded).
ARITHMETIC_OPS = ("LayerNormalization", "Softmax", "MatMul", "Conv", "Add", "Mul", "Div", "Sub", "Erf",
                  "ReduceMean", "Pow", "Sqrt")
# Outputs of these are FP16 values already when their inputs are: no rounding to insert after them.
VALUE_PRESERVING = {"Reshape", "Transpose", "Slice", "Gather", "Concat", "Split", "Squeeze", "Unsqueeze",
                    "Flatten", "Tile", "Expand", "DepthToSpace", "SpaceToDepth", "Pad", "Identity", "Where",
                    "Relu", "Max", "Min", "Clip", "Shape", "Constant"}


def emulate_fp16_storage(proto: onnx.ModelProto, block_ops: tuple[str, ...] = ()) -> onnx.ModelProto:
    model = onnx.shape_inference.infer_shapes(onnx.ModelProto.FromString(proto.SerializeToString()))
    graph = model.graph
    floats = {vi.name for vi in list(graph.value_info) + list(graph.input)
              if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
    readers = consumers(graph)

    def kept_fp32(node: onnx.NodeProto, index: int | None = None) -> bool:
        plugin_param = is_gswa_node(node) and index not in (None, 0)
        return node.op_type in block_ops or plugin_param

    for init in graph.initializer:
        users = readers.get(init.name, [])
        if init.data_type == TensorProto.FLOAT and not all(
                kept_fp32(u, list(u.input).index(init.name)) for u in users):
            rounded = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(rounded, init.name))
    nodes = []
    rounded_inputs = set()
    input_names = {g.name for g in graph.input}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in input_names and not kept_fp32(node, i):
                rounded_inputs.add(name)
        nodes.append(node)
        if kept_fp32(node) or node.op_type in VALUE_PRESERVING:
            continue
        for j, out in enumerate(node.output):
            if out in floats:
                node.output[j] = f"{out}__fp32"
                nodes += _round_trip(node.output[j], out)
    graph_inputs = []
    for name in sorted(rounded_inputs):  # an FP16 graph casts its FP32 input to FP16 first
        half_name = f"{name}__fp16"
        for node in nodes:
            for i, inp in enumerate(node.input):
                if inp == name and not kept_fp32(node, i):
                    node.input[i] = half_name
        graph_inputs += _round_trip(name, half_name)
    del graph.node[:]
    graph.node.extend(graph_inputs + nodes)
    return model


def _round_trip(src: str, dst: str) -> list[onnx.NodeProto]:
    half = f"{dst}__half"
    return [helper.make_node("Cast", [src], [half], to=TensorProto.FLOAT16),
            helper.make_node("Cast", [half], [dst], to=TensorProto.FLOAT)]


def _run(proto: onnx.ModelProto, batch: np.ndarray, optimize: bool) -> np.ndarray:
    from ..runtime.ort import create_session

    session = create_session(proto, ["CPUExecutionProvider"], threads=1, optimize=optimize)
    out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    return np.asarray(out, np.float32)


def block_study(standard: onnx.ModelProto, lr: np.ndarray, candidates: list[tuple[str, ...]] | None = None,
                progress=None) -> list[dict]:
    """One row per block list: PSNR (dB, RGB 0..1, clipped) of each FP16 measurement vs FP32."""
    batch = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], dtype=np.float32)
    ref = np.clip(_run(standard, batch, optimize=True), 0, 1)
    present = Counter(n.op_type for n in standard.graph.node)
    if candidates is None:
        singles = [(op,) for op in ARITHMETIC_OPS if op in present]
        candidates = [(), *singles, ("LayerNormalization", "Softmax")]
    rows = []
    for block in candidates:
        if any(op not in present for op in block):
            continue
        row: dict[str, Any] = {"blocked": list(block)}
        for key, graph, optimize in (("ort_fp16", to_fp16(standard, block), True),
                                     ("fp16_storage", emulate_fp16_storage(standard, block), False)):
            out = _run(graph, batch, optimize)
            row[key + "_psnr_db"] = psnr(np.clip(np.nan_to_num(out, nan=0.0), 0, 1), ref)
            row[key + "_nonfinite"] = int((~np.isfinite(out)).sum())
        rows.append(row)
        if progress:
            progress(1)
    return rows
