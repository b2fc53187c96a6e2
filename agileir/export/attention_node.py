"""The attention form's kernel: attention inside the windows as one ONNX `Attention` node (opset 23).

The windows are the heads: Q, K, V are (B, nW, N, D) with N = window^2 tokens, and the relative-position bias
plus shift mask is the float additive mask, (N, N) or (1, nW, N, N). TensorRT-RTX's fused attention needs V's
head dim equal to K's, so the narrower of the two is zero-padded (zero channels add nothing to the logits;
zero value channels are sliced off the output). Traced, the node is written in a private domain (the
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


def _pad_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x if x.shape[1] == channels else F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))


def attention_kernel(q, k, v, logit_bias, scale: float, batch):
    """Window-space kernel (docs/gswa.md): q, k (B*nW, Ck, w, w), v (B*nW, Cv, w, w) -> (B*nW, Cv, w, w)."""
    window, cv = q.shape[-1], v.shape[1]
    n, dim = window * window, max(q.shape[1], cv)

    def heads(x):  # (B*nW, D, w, w) -> (B, nW, N, D)
        return _pad_channels(x, dim).reshape(batch, -1, dim, n).transpose(2, 3)

    mask = logit_bias.unsqueeze(0) if logit_bias.dim() == 3 else logit_bias
    out = AttentionNode.apply(heads(q), heads(k), heads(v), mask.to(q.dtype), float(scale))
    return out[..., :cv].transpose(2, 3).reshape(-1, cv, window, window)


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
