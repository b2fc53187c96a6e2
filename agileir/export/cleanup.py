"""Cleaning a traced graph: the passes this model's TorchScript trace needs, in place of a general optimiser.

The trace writes the shape arithmetic of every reshape (Shape -> Gather -> Unsqueeze -> Concat), one copy per
use, and a few identities. :func:`clean_traced` repeats, until nothing changes: ONNX shape inference, dims
known statically replaced by constants, onnx-graphsurgeon constant folding (up to `fold_bytes` per result;
bigger constants are left to agileir.export.onnx_export.fold_constant_nodes and its policy), and
:func:`simplify` (common subexpressions with small constants compared by value, Casts to the type a tensor
already has, Mul/Div by 1 and Add/Sub of 0, Unsqueeze chains). Every rewrite is exact: the outputs are
bit-identical.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

SMALL_CONSTANT = 64  # elements: constants up to this size are compared by value in common subexpressions
MAX_ROUNDS = 6


def clean_traced(model: onnx.ModelProto, fold_bytes: int = 16384,
                 step: Callable[[str], None] | None = None) -> onnx.ModelProto:
    """The cleaned graph; `step(message)` is called after each round (for progress lines)."""
    import onnx_graphsurgeon as gs
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # the folder's sessions: no warning per foldable Unsqueeze
    for round_ in range(MAX_ROUNDS):
        graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))
        before = len(graph.nodes)
        changed = static_dims(graph)
        graph.fold_constants(size_threshold=fold_bytes).cleanup()
        changed += simplify(graph)
        graph.cleanup().toposort()
        cleaned = _export(graph, model)
        if step is not None:
            step(f"round {round_ + 1}: {before} -> {len(graph.nodes)} nodes")
        model = cleaned
        if not changed and len(graph.nodes) == before:
            break
    return model


def _export(graph, like: onnx.ModelProto) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    out = gs.export_onnx(graph)
    del out.opset_import[:]  # keep the opsets (the custom domain's entry too) as the exporter wrote them
    out.opset_import.extend(like.opset_import)
    del out.metadata_props[:]
    out.metadata_props.extend(like.metadata_props)
    return out


def redirect_readers(graph, old, new) -> None:
    """Every reader of tensor `old` (graph outputs included) reads `new`."""
    for consumer in list(old.outputs):
        for i, t in enumerate(consumer.inputs):
            if t is old:
                consumer.inputs[i] = new
    for i, t in enumerate(graph.outputs):
        if t is old:
            graph.outputs[i] = new


def _is_output(graph, tensor) -> bool:
    return any(t is tensor for t in graph.outputs)


def static_dims(graph) -> int:
    """Gather(Shape(x), indices) with x's dims at those indices known -> a constant."""
    import onnx_graphsurgeon as gs

    count = 0
    for node in graph.nodes:
        if node.op != "Gather" or not node.inputs[0].inputs or not isinstance(node.inputs[1], gs.Constant):
            continue
        shape = node.inputs[0].inputs[0]
        if shape.op != "Shape" or shape.inputs[0].shape is None:
            continue
        dims = list(shape.inputs[0].shape)[shape.attrs.get("start", 0):shape.attrs.get("end", None)]
        try:
            values = np.array(dims, dtype=object)[np.asarray(node.inputs[1].values)]
        except IndexError:
            continue
        if all(isinstance(v, (int, np.integer)) and v >= 0 for v in np.ravel(values)):
            out = node.outputs[0]
            redirect_readers(graph, out, gs.Constant(f"{out.name}_static", np.asarray(values, dtype=np.int64)))
            node.outputs.clear()
            count += 1
    return count


def simplify(graph) -> int:
    return _identity_casts(graph) + _identity_arithmetic(graph) + _unsqueeze_chains(graph) + _common(graph)


def _key(t):
    import onnx_graphsurgeon as gs

    if isinstance(t, gs.Constant) and t.values.size <= SMALL_CONSTANT:
        v = np.asarray(t.values)
        return ("const", v.dtype.str, v.shape, v.tobytes())
    return id(t)


def _common(graph) -> int:
    """Merge nodes with the same op, attributes and inputs (small constants compared by value)."""
    seen, count = {}, 0
    for node in graph.nodes:
        if len(node.outputs) != 1 or not node.inputs:
            continue
        key = (node.op, node.domain, tuple(_key(t) for t in node.inputs), repr(sorted(node.attrs.items())))
        first = seen.setdefault(key, node)
        if first is not node and not _is_output(graph, node.outputs[0]):
            redirect_readers(graph, node.outputs[0], first.outputs[0])
            node.outputs.clear()
            count += 1
    return count


def _bypass(graph, node, source) -> bool:
    out = node.outputs[0]
    if _is_output(graph, out):
        return False
    redirect_readers(graph, out, source)
    node.outputs.clear()
    return True


def _identity_casts(graph) -> int:
    count = 0
    for node in graph.nodes:
        if node.op != "Cast" or node.inputs[0].dtype is None:
            continue
        if onnx.helper.np_dtype_to_tensor_dtype(np.dtype(node.inputs[0].dtype)) == node.attrs.get("to"):
            count += _bypass(graph, node, node.inputs[0])
    return count


IDENTITY = {"Mul": (1.0, (0, 1)), "Div": (1.0, (1,)), "Add": (0.0, (0, 1)), "Sub": (0.0, (1,))}


def _identity_arithmetic(graph) -> int:
    """x * 1, x / 1, x + 0, x - 0 with a constant of ones / zeros that cannot change x's shape or type."""
    import onnx_graphsurgeon as gs

    count = 0
    for node in graph.nodes:
        if node.op not in IDENTITY or len(node.inputs) != 2:
            continue
        value, slots = IDENTITY[node.op]
        for slot in slots:
            const, other = node.inputs[slot], node.inputs[1 - slot]
            if (isinstance(const, gs.Constant) and _fits(const.values.shape, other.shape)
                    and other.dtype is not None and np.dtype(other.dtype) == const.values.dtype
                    and bool(np.all(np.asarray(const.values) == value))):
                count += _bypass(graph, node, other)
                break
    return count


def _fits(shape: tuple, into) -> bool:
    """A constant of `shape` broadcast against a tensor of shape `into` leaves it as it is."""
    if into is None or len(shape) > len(into):
        return False
    return all(d == 1 or (isinstance(t, (int, np.integer)) and d == t) for d, t in zip(shape[::-1], list(into)[::-1]))


def _unsqueeze_chains(graph) -> int:
    """Unsqueeze(Unsqueeze(x, a), b) -> Unsqueeze(x, a'), the inner one read only here."""
    import onnx_graphsurgeon as gs

    count = 0
    for node in graph.nodes:
        inner = node.inputs[0].inputs[0] if node.op == "Unsqueeze" and node.inputs[0].inputs else None
        if (inner is None or inner.op != "Unsqueeze" or len(node.inputs[0].outputs) != 1
                or not all(isinstance(n.inputs[1], gs.Constant) for n in (node, inner) if len(n.inputs) > 1)
                or len(node.inputs) < 2 or len(inner.inputs) < 2 or inner.inputs[0].shape is None):
            continue
        rank = len(inner.inputs[0].shape)
        a, b = (np.asarray(n.inputs[1].values).ravel().tolist() for n in (inner, node))
        final = rank + len(a) + len(b)
        outer = sorted(x % final for x in b)
        free = [i for i in range(final) if i not in outer]  # the intermediate tensor's axes, in order
        axes = sorted(outer + [free[x % (rank + len(a))] for x in a])
        node.inputs[0] = inner.inputs[0]
        node.inputs[1] = gs.Constant(f"{node.name}_axes", np.asarray(axes, dtype=np.int64))
        count += 1
    return count
