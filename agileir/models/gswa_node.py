"""Identity of the GSWA node in ONNX graphs and of the TensorRT plugin that runs it (docs/gswa.md, "Plugin node").

Everything that writes, finds, runs or builds that node (exporter, ONNX Runtime op, INT8/FP16 rules,
TensorRT builder, C++ creator) takes its names from here.
"""
from __future__ import annotations

from typing import Any

DOMAIN = "agileir"
OP_TYPE = "GroupShiftedWindowAttention"
PLUGIN_NAMESPACE = "agileir"  # the creator's namespace, what TensorRT's ONNX parser looks up
PLUGIN_VERSION = "1"
# onnxruntime-extensions binds Python ops to its own domain: ONNX Runtime sessions run the node there.
ORT_CONTRIB_DOMAIN = "ai.onnx.contrib"
MASK_VALUE = -100.0  # Swin's logit for token pairs from different shift regions (the CUDA kernel: GSWA_MASK_VALUE)


def is_gswa_node(node: Any) -> bool:
    """True for an onnx.NodeProto (or onnx-graphsurgeon Node) of the GSWA op, in its own domain or in the one
    ONNX Runtime sessions move it to."""
    op = node.op_type if hasattr(node, "op_type") else getattr(node, "op", None)
    return op == OP_TYPE and (getattr(node, "domain", "") or "") in (DOMAIN, ORT_CONTRIB_DOMAIN)


def gswa_nodes(graph_or_model: Any) -> list:
    """The GSWA nodes of an onnx.ModelProto / GraphProto, in graph order."""
    graph = getattr(graph_or_model, "graph", graph_or_model)
    return [n for n in graph.node if is_gswa_node(n)]


def identity() -> dict[str, str]:
    return {"domain": DOMAIN, "op_type": OP_TYPE, "plugin_namespace": PLUGIN_NAMESPACE,
            "plugin_version": PLUGIN_VERSION}
