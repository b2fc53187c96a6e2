"""FP16 variant of an exported graph: onnxconverter-common's float16 autocast, FP32 graph I/O.

The result is strongly typed (every tensor's precision is in the graph), which is what TensorRT 11
builds from. Op types in `block_ops` stay FP32 behind Cast nodes; the GSWA plugin node takes and
returns FP16 while its parameters (inputs 1-3) stay FP32, as the plugin contract requires.
"""
from __future__ import annotations

import warnings

import onnx
from onnx import TensorProto

from ..models.gswa_node import OP_TYPE, is_gswa_node
from .graph import consumers, producers

# Measured choice, see docs/calibration.md ("FP16: which ops stay FP32").
DEFAULT_BLOCK_OPS = ("LayerNormalization",)
FP16_MAX = 65504.0


def to_fp16(proto: onnx.ModelProto, block_ops: tuple[str, ...] | list[str] = DEFAULT_BLOCK_OPS) -> onnx.ModelProto:
    from onnxconverter_common import float16

    from ..export.compat import drop_cast_round_trips

    source_casts = {n.name for n in proto.graph.node if n.op_type == "Cast"}
    model = onnx.ModelProto.FromString(proto.SerializeToString())
    # The plugin node is blocked so its parameters keep FP32; its qkv/output casts are undone below.
    blocked = list(float16.DEFAULT_OP_BLOCK_LIST) + list(block_ops) + [OP_TYPE]
    _unshare_initializers(model, set(blocked))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per weight below FP16's normal range, clamped to 1e-7
        model = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked,
                                                 node_block_list=_decomposed_nodes(model, block_ops),
                                                 max_finite_val=FP16_MAX)
    model = drop_cast_round_trips(model)  # FP32-kept tensors read by several FP32-kept nodes stay FP32
    _retype_source_casts(model, source_casts, set(block_ops))
    _plugin_io_to_fp16(model)
    return onnx.shape_inference.infer_shapes(model)


def _decomposed_nodes(model: onnx.ModelProto, block_ops) -> list[str]:
    """Nodes of a blocked op's exact decomposition (agileir.export.compat) stay FP32 like the op itself."""
    from ..export.compat import is_decomposed

    return [n.name for n in model.graph.node if any(is_decomposed(n.name, op) for op in block_ops)]


def _unshare_initializers(model: onnx.ModelProto, blocked: set[str]) -> None:
    """Give blocked nodes their own copy of a float initializer that unblocked nodes also read: the
    converter keeps an initializer FP32 for all its readers as soon as one of them is blocked."""
    inits = {i.name: i for i in model.graph.initializer if i.data_type == TensorProto.FLOAT}
    readers: dict[str, set[bool]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                readers.setdefault(name, set()).add(node.op_type in blocked)
    shared = {name for name, kinds in readers.items() if len(kinds) == 2}
    for name in sorted(shared):
        copy = model.graph.initializer.add()
        copy.CopyFrom(inits[name])
        copy.name = f"{name}__fp32"
    for node in model.graph.node:
        if node.op_type in blocked:
            for i, name in enumerate(node.input):
                if name in shared:
                    node.input[i] = f"{name}__fp32"


def _retype_source_casts(model: onnx.ModelProto, names: set[str], block_ops: set[str]) -> None:
    """The converter leaves the graph's own Cast(to=FLOAT) nodes (mask and index arithmetic) as they
    are although their consumers now run in FP16."""
    readers = consumers(model.graph)
    for node in model.graph.node:
        if node.name not in names:
            continue
        to = next(a for a in node.attribute if a.name == "to")
        if to.i != TensorProto.FLOAT:
            continue
        users = readers.get(node.output[0], [])
        if users and all(u.op_type in block_ops for u in users):
            continue
        to.i = TensorProto.FLOAT16
        for vi in model.graph.value_info:
            if vi.name == node.output[0]:
                vi.type.tensor_type.elem_type = TensorProto.FLOAT16


def _plugin_io_to_fp16(model: onnx.ModelProto) -> None:
    graph = model.graph
    producer, readers = producers(graph), consumers(graph)
    dead = []
    for node in graph.node:
        if not is_gswa_node(node):
            continue
        cast_in = producer.get(node.input[0])
        if cast_in is not None and cast_in.op_type == "Cast" and len(readers[cast_in.output[0]]) == 1:
            node.input[0] = cast_in.input[0]
            dead.append(cast_in)
        users = readers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "Cast":
            cast_out = users[0]
            node.output[0] = cast_out.output[0]
            dead.append(cast_out)
    for node in dead:
        graph.node.remove(node)
    produced = {o for n in graph.node for o in n.output}
    kept = [vi for vi in graph.value_info if vi.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept)
