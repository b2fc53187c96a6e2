"""Exports for an older TensorRT parser (agileir-export --compat TARGET): exact graph rewrites applied after tracing,
so that the graph uses only what that release's ONNX parser imports (agileir.export.trt_compat has the tables).

* LayerNormalization (no importer before 8.6) -> ReduceMean / Sub / Pow / ReduceMean / Add / Sqrt / Div / Mul / Add,
  the same arithmetic in FP32 (stash_type 1); ReduceMean's axes an attribute below opset 18, an initializer from
  18. The nodes are named `<LayerNorm name>/LayerNormalization.decomposed/<op>`: the FP16 variant keeps every node
  so named in FP32 when LayerNormalization is among its FP32 op types (agileir.calibration.fp16), as it keeps the
  native op.
* Gelu (no importer before 10.0) -> Div / Erf / Add / Mul / Mul (approximate "none") or the tanh form.
* Attention (no importer before 10.14): not rewritten; the attention form is refused for such targets.
* The opset must be within the parser's documented range (8.5 / 8.6: up to 17; 10.0-10.3: up to 20).
The INT8 variants' Q/DQ (symmetric INT8, zero points present, per-channel only on weights, FP32 scales) already
meet TensorRT 8.5's importer; the export checks every file it writes with trt_compat.incompatibilities.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .targets import COMPAT_TARGETS, DEFAULT_COMPAT, TARGET_TRT
from .trt_compat import OPSET_CAP, RELEASES, release_of
DECOMPOSED = "{op}.decomposed"  # the path segment of the nodes that replace one op


def is_decomposed(node_name: str, op: str) -> bool:
    """True for a node that is part of a decomposed `op` (its FP16 treatment follows that op's)."""
    return f"/{DECOMPOSED.format(op=op)}/" in node_name


def target_summary(target: str) -> dict:
    """export.json's "compat" entry: the target, the parser table it satisfies and the TensorRT it ships."""
    key = release_of(target)
    return {"target": target, "parser": RELEASES[key].name, "tensorrt": TARGET_TRT.get(target),
            "plugin_interface": RELEASES[key].plugin_interface}


def refusal(forms, target: str, opset: int) -> str | None:
    """Why an export of `forms` at `opset` cannot serve `target` (None: it can)."""
    if target not in COMPAT_TARGETS:
        return f"unknown --compat target {target!r}: one of {', '.join(COMPAT_TARGETS)}"
    key = release_of(target)
    rel = RELEASES[key]
    if "attention" in forms and "Attention" not in rel.ops:
        return (f"the attention form needs the ONNX Attention importer (TensorRT 10.14 and later); --compat "
                f"{target} is {rel.name}: export the standard or plugin form (--form both)")
    cap = OPSET_CAP.get(key)
    if cap is not None and opset > cap:
        return f"--compat {target}: {rel.name}'s parser is documented up to opset {cap}; export with --opset {cap}"
    return None


def to_compat(proto: onnx.ModelProto, target: str) -> onnx.ModelProto:
    """The exact rewrites `target`'s parser needs (none for `latest`); raises ValueError for a graph it cannot
    serve (Attention nodes below 10.14, an opset above the parser's)."""
    if target == DEFAULT_COMPAT:
        return proto
    opset = _opset(proto)
    forms = ("attention",) if any(n.op_type == "Attention" and not n.domain for n in proto.graph.node) else ()
    why = refusal(forms, target, opset)
    if why:
        raise ValueError(why)
    rel = RELEASES[release_of(target)]
    return decompose(proto, {op for op in REWRITES if op not in rel.ops})


def decompose(proto: onnx.ModelProto, ops) -> onnx.ModelProto:
    """A copy of `proto` with every default-domain node of the op types `ops` (keys of REWRITES) replaced by
    its exact decomposition."""
    out = onnx.ModelProto.FromString(proto.SerializeToString())
    opset = _opset(proto)
    if not any(n.op_type in ops and not n.domain for n in out.graph.node):
        return out
    nodes, inits = [], []
    for node in out.graph.node:
        if node.op_type not in ops or node.domain:
            nodes.append(node)
            continue
        new_nodes, new_inits = REWRITES[node.op_type](node, opset)
        nodes += new_nodes
        inits += new_inits
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    return out


def _opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _namer(node: onnx.NodeProto, op: str):
    base = f"{node.name or node.output[0]}/{DECOMPOSED.format(op=op)}"

    def name(kind: str) -> str:
        return f"{base}/{kind}"
    return name


def _reduce_mean(name: str, x: str, out: str, axes: list[int], opset: int, inits: list) -> onnx.NodeProto:
    if opset < 18:
        return helper.make_node("ReduceMean", [x], [out], name=name, axes=axes, keepdims=1)
    axes_name = f"{name}/axes"
    inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), axes_name))
    return helper.make_node("ReduceMean", [x, axes_name], [out], name=name, keepdims=1)


def _layer_norm(node: onnx.NodeProto, opset: int):
    """Y = (X - mean) / sqrt(var + eps) * scale + bias over the axes from `axis` to the last (negative axes)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axis = int(attrs.get("axis", -1))
    if axis >= 0:
        raise ValueError(f"{node.name}: LayerNormalization with a non-negative axis ({axis}) is not decomposed")
    if len(node.output) > 1 and any(node.output[1:]):
        raise ValueError(f"{node.name}: LayerNormalization's Mean/InvStdDev outputs are not decomposed")
    axes = list(range(axis, 0))
    name = _namer(node, "LayerNormalization")
    x, scale = node.input[0], node.input[1]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    t = {k: name(k) + ":0" for k in ("mean", "centred", "square", "var", "var_eps", "std", "normed", "scaled")}
    eps = numpy_helper.from_array(np.asarray(attrs.get("epsilon", 1e-5), np.float32), name("epsilon"))
    two = numpy_helper.from_array(np.asarray(2.0, np.float32), name("two"))
    inits = [eps, two]
    nodes = [
        _reduce_mean(name("ReduceMean"), x, t["mean"], axes, opset, inits),
        helper.make_node("Sub", [x, t["mean"]], [t["centred"]], name=name("Sub")),
        # Pow, not Mul(d, d): onnxconverter-common casts a tensor read twice by one blocked node to FP16 and back
        helper.make_node("Pow", [t["centred"], two.name], [t["square"]], name=name("Pow")),
        _reduce_mean(name("ReduceMean_var"), t["square"], t["var"], axes, opset, inits),
        helper.make_node("Add", [t["var"], eps.name], [t["var_eps"]], name=name("AddEpsilon")),
        helper.make_node("Sqrt", [t["var_eps"]], [t["std"]], name=name("Sqrt")),
        helper.make_node("Div", [t["centred"], t["std"]], [t["normed"]], name=name("Div")),
        helper.make_node("Mul", [t["normed"], scale], [t["scaled"] if bias else node.output[0]], name=name("Scale")),
    ]
    if bias:
        nodes.append(helper.make_node("Add", [t["scaled"], bias], [node.output[0]], name=name("Bias")))
    return nodes, inits


def _gelu(node: onnx.NodeProto, opset: int):
    """0.5 * x * (1 + erf(x / sqrt(2))), or the tanh approximation when the node asks for it."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    name = _namer(node, "Gelu")
    x, y = node.input[0], node.output[0]

    def const(kind: str, value: float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, np.float32), name(kind))

    one, half = const("one", 1.0), const("half", 0.5)
    t = {k: name(k) + ":0" for k in ("inner", "cube", "cubic", "sum", "act", "plus1", "xs")}
    if approximate == "tanh":
        c, k = const("sqrt_2_over_pi", math.sqrt(2.0 / math.pi)), const("k", 0.044715)
        inits = [one, half, c, k]
        nodes = [helper.make_node("Mul", [x, x], [t["cube"] + "sq"], name=name("Square")),
                 helper.make_node("Mul", [t["cube"] + "sq", x], [t["cube"]], name=name("Cube")),
                 helper.make_node("Mul", [t["cube"], k.name], [t["cubic"]], name=name("MulK")),
                 helper.make_node("Add", [x, t["cubic"]], [t["sum"]], name=name("AddCubic")),
                 helper.make_node("Mul", [t["sum"], c.name], [t["inner"]], name=name("MulC")),
                 helper.make_node("Tanh", [t["inner"]], [t["act"]], name=name("Tanh"))]
    else:
        root2 = const("sqrt2", math.sqrt(2.0))
        inits = [one, half, root2]
        nodes = [helper.make_node("Div", [x, root2.name], [t["inner"]], name=name("Div")),
                 helper.make_node("Erf", [t["inner"]], [t["act"]], name=name("Erf"))]
    nodes += [helper.make_node("Add", [t["act"], one.name], [t["plus1"]], name=name("AddOne")),
              helper.make_node("Mul", [x, t["plus1"]], [t["xs"]], name=name("Mul")),
              helper.make_node("Mul", [t["xs"], half.name], [y], name=name("MulHalf"))]
    return nodes, inits


REWRITES = {"LayerNormalization": _layer_norm, "Gelu": _gelu}


def check_exported(paths, target: str, echo=print) -> dict[str, list[str]]:
    """trt_compat.incompatibilities of every written ONNX file against `target`'s parser; {file name: findings}
    for the files it would not import (empty: all parse)."""
    from .trt_compat import incompatibilities

    parser = RELEASES[release_of(target)].name
    failed = {}
    for path in paths:
        found = incompatibilities(onnx.load(str(path), load_external_data=False), target)
        if found:
            failed[path.name] = [f.line() for f in found]
        echo(f"[compat] {path.name}: " + ("; ".join(failed[path.name]) if found else f"only ops {parser} imports"))
    return failed


def drop_cast_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Cast(to FP16) nodes whose every reader is a Cast back to FP32 (the readers take the FP32 tensor;
    onnxconverter-common rounds an FP32-kept tensor with several FP32-kept readers to FP16 and back), and
    repeated casts of one tensor to one type."""
    graph = model.graph
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    dead, rename, first = [], {}, {}
    for node in graph.node:
        key = (node.input[0], cast_to(node)) if node.op_type == "Cast" else None
        if key is not None and key in first and node.output[0] not in outputs:  # the same cast twice
            dead.append(node)
            rename[node.output[0]] = first[key]
            continue
        if key is not None:
            first[key] = node.output[0]
        users = readers.get(node.output[0], []) if cast_to(node) == onnx.TensorProto.FLOAT16 else []
        if users and node.output[0] not in outputs and all(cast_to(u) == onnx.TensorProto.FLOAT for u in users):
            dead += [node, *users]
            rename.update({u.output[0]: node.input[0] for u in users})
    if not dead:
        return model
    for node in graph.node:
        for i, name in enumerate(node.input):
            while name in rename:  # a repeated cast may be a round trip's reader too
                name = rename[name]
            node.input[i] = name
    for out in graph.output:
        if out.name in rename:
            return model  # a graph output is one of the casts: leave the graph as it is
    gone = {n.output[0] for n in dead}
    kept = [n for n in graph.node if n.op_type != "Cast" or n.output[0] not in gone]
    del graph.node[:]
    graph.node.extend(kept)
    return model
