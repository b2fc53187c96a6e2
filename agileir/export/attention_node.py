"""The attention form's kernel: attention inside the windows as one ONNX `Attention` node (opset 23).

The windows are the heads: Q, K, V are (B, nW, N, D) with N = window^2 tokens, and the relative-position bias
plus shift mask is the float additive mask, (N, N) or (1, nW, N, N). TensorRT-RTX's fused attention needs V's
head dim equal to K's: the model routes with equal_head_dims, so v arrives zero-padded to K's width by its
conv's weights (zero value channels give zero output channels, which the model drops). Traced, the node is written in a private domain (the
TorchScript exporter stops at opset 20) and moved to the standard domain by :func:`to_standard_attention`.
"""
from __future__ import annotations

import onnx
import torch
import torch.nn.functional as F

TRACE_DOMAIN = "agileir.trace"


class AttentionNode(torch.autograd.Function):
    """Eager: scaled dot-product attention with an additive mask. Export: one Attention node."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    @staticmethod
    def symbolic(g, q, k, v, mask, scale):
        out = g.op(f"{TRACE_DOMAIN}::Attention", q, k, v, mask, scale_f=scale)
        out.setType(q.type())
        return out


def attention_kernel(q, k, v, logit_bias, scale: float):
    """Window-space kernel, windows as heads (agileir.models.gswa.attend_tokens): q, k, v (B, nW, N, D) with
    equal D (the model routes with equal_head_dims) -> (B, nW, N, D)."""
    if not q.shape[-1] == k.shape[-1] == v.shape[-1]:
        raise ValueError("the Attention form needs q, k and v of one head dim (route with equal_head_dims)")
    return AttentionNode.apply(q, k, v, logit_bias.to(q.dtype), float(scale))


def to_standard_attention(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Move the traced Attention nodes into the standard domain and raise the graph to `opset` (>= 23)."""
    from onnx import version_converter

    converted = version_converter.convert_version(model, opset)
    for node in converted.graph.node:
        if node.domain == TRACE_DOMAIN:
            node.domain = ""
    imports = [o for o in converted.opset_import if o.domain != TRACE_DOMAIN]
    del converted.opset_import[:]
    converted.opset_import.extend(imports)
    return converted
