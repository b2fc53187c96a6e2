"""ONNX Runtime sessions for both export forms.

The plugin form's `agileir::GroupShiftedWindowAttention` node runs through an onnxruntime-extensions
Python op that calls the reference GSWA. onnxruntime-extensions binds Python ops to its own domain
(`ai.onnx.contrib`) only, so the session gets an in-memory copy of the graph with those nodes moved
to that domain; files on disk keep the `agileir` domain that TensorRT's parser matches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ..export.plugin_node import DOMAIN, OP_TYPE

_registered = False


def _register_plugin_op() -> None:
    global _registered
    if _registered:
        return
    try:
        from onnxruntime_extensions import PyCustomOpDef, default_opset_domain, onnx_op
    except ImportError:
        raise RuntimeError("running model.plugin.onnx in ONNX Runtime needs onnxruntime-extensions "
                           "(pip install 'agileir[onnx]')") from None
    import torch

    from ..models.gswa import gswa

    attrs = {"window_size": PyCustomOpDef.dt_int64, "shift_size": PyCustomOpDef.dt_int64,
             "key_dim": PyCustomOpDef.dt_int64, "scale": PyCustomOpDef.dt_float,
             "plugin_namespace": PyCustomOpDef.dt_string, "plugin_version": PyCustomOpDef.dt_string}
    f32 = PyCustomOpDef.dt_float

    def run(qkv, dw_weight, dw_bias, bias_table, **a):
        x = torch.from_numpy(np.ascontiguousarray(qkv))
        kd = int(a["key_dim"])
        q, k, v = x.float().split([kd, kd, x.shape[1] - 2 * kd], dim=1)
        with torch.inference_mode():
            out = gswa(q, k, v, torch.from_numpy(dw_weight), torch.from_numpy(dw_bias),
                       torch.from_numpy(bias_table), int(a["window_size"]), int(a["shift_size"]),
                       float(a["scale"]))
        return out.numpy().astype(qkv.dtype, copy=False)

    onnx_op(op_type=OP_TYPE, inputs=[f32, f32, f32, f32], outputs=[f32], attrs=attrs)(run)
    onnx_op(op_type=OP_TYPE + "_f16", inputs=[PyCustomOpDef.dt_float16, f32, f32, f32],
            outputs=[PyCustomOpDef.dt_float16], attrs=attrs)(run)
    _registered = True
    global _contrib_domain
    _contrib_domain = default_opset_domain()


_contrib_domain = "ai.onnx.contrib"


def retarget_plugin_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of `proto` whose plugin nodes point at the onnxruntime-extensions Python op."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    dtype_of = _value_dtypes(proto)
    for node in proto.graph.node:
        if node.domain == DOMAIN and node.op_type == OP_TYPE:
            node.domain = _contrib_domain
            if dtype_of.get(node.input[0]) == onnx.TensorProto.FLOAT16:
                node.op_type = OP_TYPE + "_f16"
    if not any(op.domain == _contrib_domain for op in proto.opset_import):
        proto.opset_import.add(domain=_contrib_domain, version=1)
    return proto


def _value_dtypes(proto: onnx.ModelProto) -> dict[str, int]:
    infos = list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in infos}


def create_session(path_or_proto: str | Path | onnx.ModelProto, providers: list[str] | None = None,
                   threads: int = 0):
    """An onnxruntime.InferenceSession for either export form (CUDA EP first when available)."""
    import onnxruntime as ort

    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else onnx.load(str(path_or_proto))
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if any(n.domain == DOMAIN for n in proto.graph.node):
        _register_plugin_op()
        from onnxruntime_extensions import get_library_path

        options.register_custom_ops_library(get_library_path())
        proto = retarget_plugin_nodes(proto)
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(proto.SerializeToString(), options, providers=providers)
