"""The export forms: the one list every command that knows forms reads (export, calibration, build, engine cache,
Triton), their file names, and how a graph's form is recognised.

* standard: standard ONNX ops (opset 17 by default); window-space blocks, attention as MatMul/Softmax.
* plugin: one custom `agileir::GroupShiftedWindowAttention` node per head group (docs/gswa.md), needs the
  TensorRT plugin library or, in ONNX Runtime, onnxruntime-extensions.
* attention: window-space blocks with one ONNX `Attention` node (opset 23) per head group, the windows as
  heads; TensorRT-RTX fuses it in FP16 graphs.
"""
from __future__ import annotations

from typing import Any

FORMS = ("standard", "plugin", "attention")
# --form choices that name several forms: `both` keeps its original meaning, `all` adds the attention form
FORM_SETS = {"both": ("standard", "plugin"), "all": FORMS}
DEFAULT_FORM_SET = "both"
_STEMS = {"standard": "model", "plugin": "model.plugin", "attention": "model.attention"}
PRECISIONS = ("fp32", "fp16", "int8")
ATTENTION_OPSET = 23  # the first opset with the Attention operator


def forms_of(choice: str) -> list[str]:
    """A --form value (one form or a form set) -> the forms, in FORMS order."""
    if choice in FORM_SETS:
        return list(FORM_SETS[choice])
    if choice not in FORMS:
        raise ValueError(f"unknown form {choice!r}: one of {', '.join(FORMS + tuple(FORM_SETS))}")
    return [choice]


def form_choices() -> list[str]:
    return list(FORM_SETS) + list(FORMS)


def onnx_name(form: str, precision: str = "fp32") -> str:
    """model.onnx, model.plugin.fp16.onnx, model.attention.int8.onnx, ..."""
    if form not in _STEMS or precision not in PRECISIONS:
        raise ValueError(f"unknown form/precision {form!r}/{precision!r}")
    return _STEMS[form] + ("" if precision == "fp32" else f".{precision}") + ".onnx"


def has_attention_nodes(graph_or_model: Any) -> bool:
    graph = getattr(graph_or_model, "graph", graph_or_model)
    return any(n.op_type == "Attention" and (n.domain or "") in ("", "ai.onnx") for n in graph.node)


def form_of(proto: Any) -> str:
    """The form of an onnx.ModelProto, from its nodes."""
    from ..models.gswa_node import gswa_nodes

    if gswa_nodes(proto):
        return "plugin"
    return "attention" if has_attention_nodes(proto) else "standard"
