"""Export a (fused) model to ONNX in one of the forms of agileir.export.forms: standard ops, one GSWA plugin
node per head group, or one ONNX Attention node per head group.

Uses torch.onnx's TorchScript-based exporter (dynamo=False): torch.export cannot express the in-graph
reflect padding to a window multiple under dynamic H and W (its shape constraints fail on torch 2.13),
while the tracer records the shape arithmetic as ONNX ops, so one file serves every input size.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from .. import __version__
from ..io.atomic import atomic_path
from ..io.progress import Progress, quiet
from ..models.gswa import routed
from ..models.gswa_node import OP_TYPE, gswa_nodes
from ..models.network import SRTransformer
from .attention_node import attention_kernel, to_standard_attention
from .cleanup import clean_traced, redirect_readers
from .compat import to_compat
from .forms import ATTENTION_OPSET, FORMS
from .plugin_node import plugin_gswa

GELU_OPSET = 20  # the first opset with Gelu, and the TorchScript exporter's newest
OPSET = 17  # LayerNormalization is native from 17; also what JetPack 6's TensorRT 10.3 parses
INPUT, OUTPUT = "lr", "sr"
BLOCK_SCOPE = re.compile(r"/layers\.(\d+)/residual_group/blocks\.(\d+)/")


@dataclass(frozen=True)
class ExportOptions:
    opset: int = OPSET
    static_shape: tuple[int, int, int, int] | None = None  # (B, C, H, W); None: dynamic B, H, W
    slim: bool = True
    # Nodes whose inputs are all constants are evaluated at export: "all" also the relative-position bias
    # gathers (table[index]: a (N*N, heads) tensor per head group, 7x the file for AgileIR-light, the same
    # memory ONNX Runtime and TensorRT use anyway); "small" only results up to FOLD_SMALL_BYTES (the MLP
    # weight transposes), for a small file.
    fold: str = "all"
    compat: str = "latest"  # agileir.export.compat target: exact rewrites for an older TensorRT parser


FOLD_SMALL_BYTES = 128 * 1024


@contextlib.contextmanager
def _without_torchscript_lint():
    """The TorchScript exporter re-checks graph invariants ten times (`_jit_pass_lint`), half of the
    export time for AgileIR-light. The written graph is checked by onnx.checker and by ONNX Runtime
    parity instead, so the lint is skipped for the duration of the export."""
    original = getattr(torch._C, "_jit_pass_lint", None)
    if original is None:
        yield
        return
    torch._C._jit_pass_lint = lambda graph: None
    try:
        yield
    finally:
        torch._C._jit_pass_lint = original


def _trace_to_onnx(model: SRTransformer, path, options: ExportOptions) -> None:
    """The TorchScript export into `path` (a file name or a binary buffer), traced at two windows each way: the
    smallest input whose shifted blocks have every mask region (a one-window input has no shifted windows)."""
    shape = options.static_shape or (1, model.config.in_chans, 2 * model.window_size, 2 * model.window_size)
    dummy = torch.rand(*shape)
    dynamic = None if options.static_shape else {INPUT: {0: "batch", 2: "height", 3: "width"},
                                                  OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}
    with warnings.catch_warnings(), _without_torchscript_lint():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints are expected here
        _torchscript_export(model, (dummy,), path if isinstance(path, io.BytesIO) else str(path), input_names=[INPUT],
                            output_names=[OUTPUT], opset_version=options.opset, dynamic_axes=dynamic,
                            do_constant_folding=False)


def _torchscript_export(model, args, f, **kwargs) -> None:
    """torch.onnx.export's TorchScript exporter without its own ONNX shape inference (a third of the trace: run
    per node as it is converted and over the whole graph; the graph is cleaned with ONNX's shape inference
    afterwards, and every form is checked against PyTorch). Plain torch.onnx.export where that entry is absent."""
    import inspect

    try:
        from torch.onnx._internal.torchscript_exporter import utils as torchscript
        quiet = "onnx_shape_inference" in inspect.signature(torchscript._export).parameters
    except (ImportError, AttributeError):
        quiet = False
    if quiet:
        torchscript._export(model, args, f, onnx_shape_inference=False, **kwargs)
    else:
        torch.onnx.export(model, args, f, dynamo=False, **kwargs)


def _trace(model: SRTransformer, options: ExportOptions) -> onnx.ModelProto:
    buffer = io.BytesIO()
    _trace_to_onnx(model, buffer, options)
    return onnx.load_from_string(buffer.getvalue())


def fold_split_concat(model: onnx.ModelProto) -> onnx.ModelProto:
    """Concat(Split(x)) with all outputs in order on the same axis is x: drop the pair.

    The plugin node takes q, k and v packed; the model splits the qkv conv output into q, k, v and the
    plugin wrapper concatenates them again, so this pass removes the round trip."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    for node in graph.nodes:
        if node.op != "Concat" or not node.inputs:
            continue
        producer = node.inputs[0].inputs[0] if node.inputs[0].inputs else None
        if (producer is None or producer.op != "Split" or list(node.inputs) != list(producer.outputs)
                or node.attrs.get("axis") != producer.attrs.get("axis", 0)):
            continue
        if any(len(t.outputs) != 1 for t in producer.outputs):
            continue  # a split output is also used elsewhere
        redirect_readers(graph, node.outputs[0], producer.inputs[0])
        node.outputs.clear()
    graph.cleanup().toposort()
    return gs.export_onnx(graph)


def constant_only_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes (other than Constant) whose inputs are all initializers, Constants or outputs of such nodes."""
    known = {i.name for i in model.graph.initializer} | {""}
    found = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            known |= set(node.output)
        elif node.input and all(i in known for i in node.input):
            found.append(node)
            known |= set(node.output)
    return found


def fold_constant_nodes(model: onnx.ModelProto, policy: str = "all") -> onnx.ModelProto:
    """onnx-graphsurgeon's constant folding (evaluated with ONNX Runtime), the folded tensors keeping the
    names of the outputs they replace (so the Q/DQ transplant between forms still matches by name)."""
    import onnx_graphsurgeon as gs

    if policy not in ("all", "small"):
        raise ValueError(f"fold must be 'all' or 'small', got {policy!r}")
    if not constant_only_nodes(model):
        return model
    graph = gs.import_onnx(model)
    graph.fold_constants(size_threshold=None if policy == "all" else FOLD_SMALL_BYTES).cleanup().toposort()
    folded = gs.export_onnx(graph)
    del folded.opset_import[:]  # keep the opsets (the custom domain's entry too) as the exporter wrote them
    folded.opset_import.extend(model.opset_import)
    folded.metadata_props.extend(model.metadata_props)
    return folded


ELEMENTWISE_OPS = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "Greater", "Where")


def _rank_aligned_slots(node) -> tuple[int | None, tuple[int, ...]]:
    """(the rank the node's constant operands should have, which inputs) for the ops TensorRT broadcasts."""
    out_shape = node.outputs[0].shape if node.outputs else None
    if node.op in ELEMENTWISE_OPS:
        return (len(out_shape) if out_shape is not None else None), tuple(range(len(node.inputs)))
    if node.op == "LayerNormalization" and node.inputs[0].shape is not None:
        return len(node.inputs[0].shape), (1, 2)
    if node.op == "Attention" and len(node.inputs) > 3:
        return 4, (3,)
    return None, ()


def align_constant_ranks(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every constant operand of an elementwise op, a LayerNormalization scale and bias, and an Attention
    mask the rank of what it is broadcast against (leading 1s). Same values; TensorRT's ONNX parser otherwise
    adds a broadcast Shuffle per operand and per use (hundreds of layers in a network this size)."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    reshaped: dict[tuple[str, int], gs.Constant] = {}
    for node in graph.nodes:
        rank, slots = _rank_aligned_slots(node)
        for i in slots if rank else ():
            t = node.inputs[i] if i < len(node.inputs) else None
            if not isinstance(t, gs.Constant) or t.values.ndim >= rank:
                continue
            key = (t.name, rank)
            if key not in reshaped:
                values = np.asarray(t.values)
                padded = values.reshape((1,) * (rank - values.ndim) + values.shape)
                reshaped[key] = gs.Constant(f"{t.name}_rank{rank}", padded)
            node.inputs[i] = reshaped[key]
    if not reshaped:
        return model
    graph.cleanup()
    aligned = gs.export_onnx(graph)
    del aligned.opset_import[:]
    aligned.opset_import.extend(model.opset_import)
    aligned.metadata_props.extend(model.metadata_props)
    return aligned


def node_counts(model: onnx.ModelProto) -> dict:
    per_block: Counter = Counter()
    for node in model.graph.node:
        m = BLOCK_SCOPE.search(node.name)
        if m:
            per_block[f"layers.{m.group(1)}.blocks.{m.group(2)}"] += 1
    ops = Counter(n.op_type for n in model.graph.node)
    return {"total": len(model.graph.node), "per_block": dict(per_block),
            "max_per_block": max(per_block.values(), default=0),
            "gswa_nodes": ops.get(OP_TYPE, 0), "attention_nodes": ops.get("Attention", 0),
            "by_op": dict(ops.most_common())}


def export_onnx(model: SRTransformer, form: str = "standard", options: ExportOptions = ExportOptions(),
                progress: Progress | None = None) -> onnx.ModelProto:
    """The graph of one form: model.onnx (standard), model.plugin.onnx or model.attention.onnx. Each stage is
    reported to `progress` (agileir.io.progress; None: the 'agileir' logger only), labelled with the form."""
    if form not in FORMS:
        raise ValueError(f"unknown export form {form!r}")
    progress = progress or quiet()
    model = model.eval()
    routes = {"standard": routed(), "plugin": routed(per_call=plugin_gswa), "attention": routed(attention_kernel, equal_head_dims=True)}
    with progress.stage("trace", form, what="TorchScript trace") as step:
        # A line when the traced forward returns: TorchScript then builds and converts the graph in C++ for
        # several seconds without letting the heartbeat thread run.
        hook = model.register_forward_hook(lambda *_: step.note("forward traced; TorchScript builds the ONNX graph"))
        try:
            with routes[form]:
                # The attention form needs opset 23 anyway: traced at the exporter's newest opset (20), GELU is one
                # Gelu node instead of five (Div/Erf/Add/Mul/Mul), one TensorRT layer per MLP instead of five.
                traced = replace(options, opset=max(options.opset, GELU_OPSET)) if form == "attention" else options
                proto = _trace(model, traced)
        finally:
            hook.remove()
    if form == "attention":
        with progress.stage("attention opset", form, what=f"raising the graph to opset {ATTENTION_OPSET}"):
            proto = to_standard_attention(proto, max(options.opset, ATTENTION_OPSET))
    if options.slim:
        with progress.stage("clean", form, what=f"cleaning {len(proto.graph.node)} traced nodes") as step:
            proto = clean_traced(proto, step=step.note)  # folds the traced shape queries
    with progress.stage("fold", form, what="folding split/concat pairs and constant nodes"):
        proto = fold_split_concat(proto)
        proto = fold_constant_nodes(proto, options.fold)
        proto = to_compat(proto, options.compat)
    with progress.stage("shapes", form, what="shape inference and constant ranks"):
        proto = onnx.shape_inference.infer_shapes(proto)
        return align_constant_ranks(proto)  # needs the inferred ranks; keeps every value_info as it was


def annotate(proto: onnx.ModelProto, info: dict) -> None:
    """Store the export.json keys as ONNX metadata_props (values JSON-encoded)."""
    del proto.metadata_props[:]
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    proto.producer_name, proto.producer_version = "agileir", __version__


def save_checked(proto: onnx.ModelProto, path: Path) -> None:
    """onnx.checker on the bytes, then an atomic write."""
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def has_plugin_nodes(proto: onnx.ModelProto) -> bool:
    return bool(gswa_nodes(proto))
