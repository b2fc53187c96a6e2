"""The GSWA plugin node: how the models trace to one `agileir::GroupShiftedWindowAttention` node per call.

The node follows docs/gswa.md ("Plugin node"): packed qkv input, float32 parameters, attributes for the
op contract, and the `plugin_namespace` / `plugin_version` attributes TensorRT's ONNX parser uses to
find a registered plugin creator for an unknown op.
"""
from __future__ import annotations

import torch

from ..models.gswa import DW_KERNEL, WindowSpec, gswa
from ..models.gswa_node import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION


class GSWANode(torch.autograd.Function):
    """Eager: the reference op on packed qkv. Export: a single custom node."""

    @staticmethod
    def forward(ctx, qkv, dw_weight, dw_bias, bias_table, key_dim: int, spec: WindowSpec):
        if torch.onnx.is_in_onnx_export():  # traced, the node is recorded by symbolic(); its value is never read
            return qkv.new_zeros(qkv.shape[0], qkv.shape[1] - 2 * key_dim, qkv.shape[2], qkv.shape[3])
        q, k, v = qkv.split([key_dim, key_dim, qkv.shape[1] - 2 * key_dim], dim=1)
        return gswa(q, k, v, (dw_weight, dw_bias), bias_table, spec)

    @staticmethod
    def symbolic(g, qkv, dw_weight, dw_bias, bias_table, key_dim, spec):
        out = g.op(f"{DOMAIN}::{OP_TYPE}", qkv, dw_weight, dw_bias, bias_table,
                   window_size_i=spec.window, shift_size_i=spec.shift, key_dim_i=key_dim, scale_f=spec.scale,
                   plugin_namespace_s=PLUGIN_NAMESPACE, plugin_version_s=PLUGIN_VERSION)
        sizes = qkv.type().varyingSizes()  # None where dynamic
        if sizes and sizes[1] is not None:
            sizes[1] -= 2 * key_dim
        out.setType(qkv.type().with_sizes(sizes) if sizes else qkv.type())
        return out


def identity_dw(channels: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A depthwise 5x5 kernel that leaves q unchanged (SwinIR has no conv on q)."""
    weight = torch.zeros(channels, 1, DW_KERNEL, DW_KERNEL, dtype=like.dtype, device=like.device)
    weight[:, :, DW_KERNEL // 2, DW_KERNEL // 2] = 1.0
    return weight, torch.zeros(channels, dtype=like.dtype, device=like.device)


def plugin_gswa(q, k, v, dw, bias_table, spec: WindowSpec):
    """Drop-in for the reference op (same signature) that exports as one plugin node."""
    key_dim = int(q.shape[1])
    dw_weight, dw_bias = dw if dw is not None else identity_dw(key_dim, q)
    qkv = torch.cat([q, k, v], dim=1)
    spec = WindowSpec(int(spec.window), int(spec.shift), float(spec.scale))
    return GSWANode.apply(qkv, dw_weight, dw_bias, bias_table.reshape(-1), key_dim, spec)
