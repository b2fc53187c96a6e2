"""What each TensorRT release's ONNX parser can import, and which nodes of a graph it cannot.

The tables are transcribed from onnx/onnx-tensorrt (github), per release:

* 8.5  (JetPack 5.1.x ships 8.5.2): branch release/8.5-GA, docs/operators.md ("TensorRT 8.5 supports operators up
  to Opset 17"; rows marked Y) and builtin_op_importers.cpp (QuantDequantLinearHelper: zero point input required
  and all zeros, no UINT8, per-channel scales only for constant weights).
* 8.6  (JetPack 6.0 ships 8.6.2): branch release/8.6-GA, docs/operators.md ("up to Opset 17"); docs/Changelog.md
  8.6 EA: "Added support for GroupNormalization, LayerNormalization, IsInf".
* 10.0 to 10.3 (JetPack 6.1/6.2 ship 10.3): branch release/10.1-GA, docs/operators.md ("opset 9 to opset 20",
  Gelu, Mish, CastLike, Hardmax, DeformConv added); docs/Changelog.md 10.2 and 10.3 add no operator (10.3: tensor
  `axes` for Slice).
* 10.4 to 10.14: the 10.3 table plus docs/Changelog.md on main: 10.4 BlackmanWindow/HammingWindow/HannWindow, 10.5
  STFT, 10.14 "Added support for the `Attention` operator".
* 10.15: main, docs/operators.md ("TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset
  24"; adds RotaryEmbedding, RMSNormalization, TensorScatter).
* rtx: TensorRT-RTX 1.7's parser: the 10.15 table less DeformConv, which its IParser.supports_operator denies;
  tests/test_trt_compat.py checks every op of that table against the installed tensorrt_rtx parser.

The parser looks an op it has no importer for up as a plugin ("Plugin not found"), so an unknown standard op
fails there; a custom-domain node needs a registered plugin creator of the same name, version and namespace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from ..models.gswa_node import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION, is_gswa_node
from .targets import TARGET_TRT, TARGETS  # noqa: F401  (re-exported)

# docs/operators.md of release/8.5-GA, the rows marked Y (142 ops).
_OPS_8_5 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish Identity If ImageScaler
InstanceNormalization IsNaN LRN LSTM LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul
Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad
ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor""".split())
_OPS_8_6 = _OPS_8_5 | {"GroupNormalization", "IsInf", "LayerNormalization"}
_OPS_10_0 = _OPS_8_6 | {"CastLike", "DeformConv", "Gelu", "Hardmax", "Mish"}  # release/10.1-GA: 150 ops
_OPS_10_4 = _OPS_10_0 | {"BlackmanWindow", "HammingWindow", "HannWindow"}
_OPS_10_5 = _OPS_10_4 | {"STFT"}
_OPS_10_14 = _OPS_10_5 | {"Attention"}
_OPS_10_15 = _OPS_10_14 | {"RotaryEmbedding", "RMSNormalization", "TensorScatter"}


@dataclass(frozen=True)
class Release:
    """One parser: its name, the ops it imports, its documented default-domain opset range (None: not in the
    transcribed sources), and what its Q/DQ and plugin importers accept."""
    name: str
    ops: frozenset
    opset: tuple[int, int] | None
    plugin_interface: str  # what the plugin library for it implements
    qdq_needs_zero_point: bool  # the INT8 Q/DQ importer requires input 2
    types: frozenset = frozenset()  # tensor element types it cannot import (besides the quantized rules)
    slice_tensor_axes: bool = True  # Slice `axes` may be a tensor (changelog 10.3; 10.0-10.2 need an initializer)


_V8_TYPES = frozenset({TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ,
                       TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ, TensorProto.INT4, TensorProto.UINT4})
RELEASES = {
    "8.5": Release("TensorRT 8.5", _OPS_8_5, (1, 17), "IPluginV2DynamicExt", True, _V8_TYPES, False),
    "8.6": Release("TensorRT 8.6", _OPS_8_6, (1, 17), "IPluginV2DynamicExt", True, _V8_TYPES, False),
    "10.0": Release("TensorRT 10.0-10.2", _OPS_10_0, (9, 20), "IPluginV3", False, slice_tensor_axes=False),
    "10.3": Release("TensorRT 10.3", _OPS_10_0, (9, 20), "IPluginV3", False),
    "10.4": Release("TensorRT 10.4", _OPS_10_4, None, "IPluginV3", False),
    "10.5": Release("TensorRT 10.5-10.13", _OPS_10_5, None, "IPluginV3", False),
    "10.14": Release("TensorRT 10.14", _OPS_10_14, None, "IPluginV3", False),
    "10.15": Release("TensorRT 10.15", _OPS_10_15, (9, 24), "IPluginV3", False),
    "rtx": Release("TensorRT-RTX 1.7", _OPS_10_15 - {"DeformConv"}, (9, 24), "IPluginV3", False),
}
OPSET_CAP = {"8.5": 17, "8.6": 17, "10.0": 20, "10.3": 20}  # the highest opset an export for that parser may carry


def release_of(spec: str) -> str:
    """A target name (jetpack5, ...) or a TensorRT version (8.5, 8.6.2, 10.3.0, 10.14) -> a RELEASES key."""
    text = spec.strip().lower()
    if text in TARGETS:
        return TARGETS[text]
    if text in ("rtx", "tensorrt-rtx", "tensorrt_rtx"):
        return "rtx"
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)*", text)
    if m:
        major, minor = int(m.group(1)), int(m.group(2))
        if major == 8 and minor in (5, 6):
            return f"8.{minor}"
        if major == 10:
            return ("10.0" if minor <= 2 else "10.3" if minor == 3 else "10.4" if minor == 4 else "10.5" if minor <= 13
                    else "10.14" if minor == 14 else "10.15")
    raise ValueError(f"no parser table for {spec!r}: give a TensorRT version 8.5, 8.6 or 10.x, or a target "
                     f"({', '.join(TARGETS)})")


@dataclass(frozen=True)
class Finding:
    kind: str  # op | opset | attribute | input | qdq | type | plugin
    op: str
    count: int
    message: str

    def line(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "op": self.op, "count": self.count, "message": self.message}


def _first_version(op: str) -> str | None:
    for key in ("8.5", "8.6", "10.0", "10.4", "10.5", "10.14", "10.15"):  # the release that added an op
        if op in RELEASES[key].ops:
            return RELEASES[key].name.split("-")[0]
    return None


def incompatibilities(proto: onnx.ModelProto, target: str) -> list[Finding]:
    """What `target`'s ONNX parser (a target name or TensorRT version, see release_of) cannot import from
    `proto`: one Finding per op type / rule, with the number of nodes it concerns. Empty: it parses."""
    key = release_of(target)
    rel = RELEASES[key]
    found: list[Finding] = []
    found += _opset_findings(proto, rel)
    found += _op_findings(proto, rel)
    found += _rule_findings(proto, rel)
    found += _type_findings(proto, rel)
    return found


def notes(proto: onnx.ModelProto, target: str) -> list[str]:
    """What the graph needs from the target beyond its parser (the GSWA plugin library), one line each."""
    rel = RELEASES[release_of(target)]
    n = sum(1 for node in proto.graph.node if is_gswa_node(node))
    if not n:
        return []
    return [f"{OP_TYPE} x{n}: needs the agileir plugin library built against {rel.name}'s headers "
            f"({rel.plugin_interface}; docs/jetson.md)"]


def _opset_findings(proto: onnx.ModelProto, rel: Release) -> list[Finding]:
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or rel.opset is None:
        return []
    lo, hi = rel.opset
    if lo <= opset <= hi:
        return []
    span = f"up to opset {hi}" if lo <= 1 else f"opsets {lo} to {hi}"
    return [Finding("opset", "", 1, f"opset {opset}: {rel.name}'s parser is documented for {span}")]


def _op_findings(proto: onnx.ModelProto, rel: Release) -> list[Finding]:
    counts: dict[tuple[str, str], int] = {}
    for node in proto.graph.node:
        counts[(node.domain or "", node.op_type)] = counts.get((node.domain or "", node.op_type), 0) + 1
    found = []
    for (domain, op), n in sorted(counts.items()):
        if domain in ("", "ai.onnx"):
            if op not in rel.ops:
                since = _first_version(op)
                why = f"from {since}" if since else "in no transcribed release"
                found.append(Finding("op", op, n, f"{op} x{n}: {rel.name}'s parser has no importer ({why})"))
        elif op == OP_TYPE and domain != "agileir":
            found.append(Finding("plugin", op, n, f"{op} x{n}: domain {domain!r} (an ONNX Runtime session's copy); "
                                 "export the graph again for TensorRT"))
        elif op != OP_TYPE:
            found.append(Finding("op", op, n, f"{domain}::{op} x{n}: custom op with no agileir plugin; "
                                 f"{rel.name} would look for a plugin creator named {op}"))
    found += _plugin_attribute_findings(proto)
    return found


def _plugin_attribute_findings(proto: onnx.ModelProto) -> list[Finding]:
    bad = 0
    for node in proto.graph.node:
        if node.op_type != OP_TYPE:
            continue
        attrs = {a.name: a for a in node.attribute}
        ok = (attrs.get("plugin_namespace") and attrs["plugin_namespace"].s.decode() == PLUGIN_NAMESPACE
              and attrs.get("plugin_version") and attrs["plugin_version"].s.decode() == PLUGIN_VERSION
              and all(k in attrs for k in ("window_size", "shift_size", "key_dim", "scale")))
        bad += not ok
    if not bad:
        return []
    return [Finding("plugin", OP_TYPE, bad, f"{OP_TYPE} x{bad}: plugin_namespace {PLUGIN_NAMESPACE!r} / "
                    f"plugin_version {PLUGIN_VERSION!r} or a creator field missing; the parser finds no creator")]


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    values = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = a.t
    return values


_AXES_INPUT = {"Slice": 3, "Unsqueeze": 1, "Squeeze": 1, "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1,
               "ReduceMin": 1, "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1,
               "ReduceLogSumExp": 1, "ReduceSumSquare": 1}


def _rule_findings(proto: onnx.ModelProto, rel: Release) -> list[Finding]:
    """The restrictions operators.md and the importers state for ops this toolkit's graphs use."""
    graph = proto.graph
    consts = _constants(graph)
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    tally: dict[tuple[str, str, str], int] = {}

    def hit(kind: str, op: str, why: str) -> None:
        tally[(kind, op, why)] = tally.get((kind, op, why), 0) + 1

    for node in graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in rel.ops:
            continue
        attrs = {a.name: a for a in node.attribute}
        slot = _AXES_INPUT.get(op)
        if slot is not None and len(node.input) > slot and node.input[slot] and node.input[slot] not in consts:
            if not (op == "Slice" and rel.slice_tensor_axes):
                hit("input", op, "`axes` must be an initializer")
        if op == "LayerNormalization" and any(o in used for o in node.output[1:]):
            hit("attribute", op, "only the first output Y is imported")
        if op == "Attention":
            if any(node.input[4:]) or any(o in used for o in node.output[1:]):
                hit("input", op, "past_key/past_value/nonpad_kv_seqlen inputs and extra outputs are not imported")
            if any(attrs[k].i if k == "qk_matmul_output_mode" else attrs[k].f
                   for k in ("qk_matmul_output_mode", "softcap") if k in attrs):
                hit("attribute", op, "qk_matmul_output_mode and softcap are not imported")
        if op in ("QuantizeLinear", "DequantizeLinear"):
            for why in _qdq_problems(node, consts, rel):
                hit("qdq", op, why)
    return [Finding(kind, op, n, f"{op} x{n}: {why} ({rel.name})") for (kind, op, why), n in sorted(tally.items())]


def _qdq_problems(node: onnx.NodeProto, consts: dict, rel: Release) -> list[str]:
    from onnx import numpy_helper

    problems = []
    zero = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zero is None and rel.qdq_needs_zero_point and (len(node.input) < 3 or not node.input[2]):
        problems.append("the INT8 importer needs the zero-point input")
    if zero is not None:
        if zero.data_type == TensorProto.UINT8 and rel.qdq_needs_zero_point:
            problems.append("UINT8 quantization is not imported (INT8 only)")
        elif numpy_helper.to_array(zero).any():
            problems.append("zero point must be all zeros (symmetric quantization only)")
    scale = consts.get(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        problems.append("scale must be a constant")
    else:
        values = numpy_helper.to_array(scale)
        if (values <= 0).any():
            problems.append("scale coefficients must all be positive")
        if values.size > 1 and node.op_type == "QuantizeLinear" and node.input[0] not in consts:
            problems.append("per-channel scales on an activation (per-channel is for constant weights only)")
        if rel.qdq_needs_zero_point and scale.data_type != TensorProto.FLOAT:
            problems.append("scale must be FP32 (the 8.x importer reads it as float)")
    if rel.qdq_needs_zero_point and any(a.name in ("block_size", "output_dtype", "saturate") for a in node.attribute):
        problems.append("block_size/output_dtype/saturate attributes (opset 19+) are not imported")
    return problems


def _type_findings(proto: onnx.ModelProto, rel: Release) -> list[Finding]:
    if not rel.types:
        return []
    graph = proto.graph
    typed = [(i.name, i.data_type) for i in graph.initializer]
    typed += [(v.name, v.type.tensor_type.elem_type) for v in [*graph.input, *graph.output, *graph.value_info]]
    bad: dict[str, int] = {}
    for _, t in typed:
        if t in rel.types:
            name = TensorProto.DataType.Name(t)
            bad[name] = bad.get(name, 0) + 1
    return [Finding("type", "", n, f"{t} tensors x{n}: {rel.name} imports no {t}") for t, n in sorted(bad.items())]


def report(proto: onnx.ModelProto, target: str) -> dict:
    """The check's JSON: target, parser, findings, notes, ok."""
    key = release_of(target)
    found = incompatibilities(proto, target)
    return {"target": target, "parser": RELEASES[key].name, "ok": not found,
            "findings": [f.to_dict() for f in found], "notes": notes(proto, target)}


def check_files(paths: list, targets: list[str]) -> list[dict]:
    """report() of every ONNX file for every target (weights are not loaded). Raises ValueError for an unknown
    target and FileNotFoundError / onnx's DecodeError for a missing or unreadable file."""
    for t in targets:
        release_of(t)  # unknown targets fail before any file is read
    reports = []
    for path in paths:
        proto = onnx.load(str(path), load_external_data=False)
        reports += [{"file": str(path), **report(proto, t)} for t in targets]
    return reports


def older_than_target(metadata: dict, installed: str, file_name: str = "the model") -> str | None:
    """One line when the installed TensorRT is older than the release an export's --compat target names
    (export.json / ONNX metadata "compat"); None otherwise."""
    entry = metadata.get("compat") if isinstance(metadata.get("compat"), dict) else {}
    wanted = entry.get("tensorrt")
    if not wanted:
        return None
    have = tuple(int(p) for p in re.findall(r"\d+", str(installed))[:3])
    if have >= tuple(int(p) for p in re.findall(r"\d+", wanted)[:3]):
        return None
    return (f"note: {file_name} was exported for {entry.get('target')} (TensorRT {wanted}); the installed TensorRT "
            f"{installed} is older and its parser may not import it (agileir check --trt {installed} {file_name})")
