"""ONNX Runtime sessions for both export forms.

The plugin form's `agileir::GroupShiftedWindowAttention` node runs through an onnxruntime-extensions
Python op, `gswa_numpy` below: the op contract of docs/gswa.md in NumPy, so that running either form needs no
PyTorch (it is tested against the PyTorch reference, agileir.models.gswa). onnxruntime-extensions binds Python ops to its own domain
(`ai.onnx.contrib`) only, so the session gets an in-memory copy of the graph with those nodes moved
to that domain; files on disk keep the `agileir` domain that TensorRT's parser matches.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx

from ..models.gswa_node import MASK_VALUE, OP_TYPE, ORT_CONTRIB_DOMAIN, is_gswa_node
from .artifacts import read_onnx
from .base import Runner

_registered = False


def _register_plugin_op() -> None:
    global _registered
    if _registered:
        return
    try:
        from onnxruntime_extensions import PyCustomOpDef, default_opset_domain, onnx_op
    except ImportError:  # a missing package (exit 3 in the CLI), named with its extra
        raise ModuleNotFoundError("running model.plugin.onnx in ONNX Runtime needs onnxruntime-extensions "
                                  "(pip install 'agileir[onnx]')", name="onnxruntime_extensions") from None
    attrs = {"window_size": PyCustomOpDef.dt_int64, "shift_size": PyCustomOpDef.dt_int64,
             "key_dim": PyCustomOpDef.dt_int64, "scale": PyCustomOpDef.dt_float,
             "plugin_namespace": PyCustomOpDef.dt_string, "plugin_version": PyCustomOpDef.dt_string}
    f32 = PyCustomOpDef.dt_float

    def run(qkv, dw_weight, dw_bias, bias_table, **a):
        out = gswa_numpy(qkv, dw_weight, dw_bias, bias_table, int(a["window_size"]), int(a["shift_size"]),
                         int(a["key_dim"]), float(a["scale"]))
        return out.astype(qkv.dtype, copy=False)

    onnx_op(op_type=OP_TYPE, inputs=[f32, f32, f32, f32], outputs=[f32], attrs=attrs)(run)
    _registered = True
    global _contrib_domain
    _contrib_domain = default_opset_domain()


_contrib_domain = ORT_CONTRIB_DOMAIN


def gswa_numpy(qkv: np.ndarray, dw_weight: np.ndarray, dw_bias: np.ndarray, bias_table: np.ndarray, window: int,
               shift: int, key_dim: int, scale: float) -> np.ndarray:
    """The plugin node in NumPy (docs/gswa.md, float32 throughout): qkv (B, 2*key_dim + Cv, H, W) ->
    (B, Cv, H, W), H and W multiples of `window`."""
    x = np.asarray(qkv, dtype=np.float32)
    b, c, h, w = x.shape
    if h % window or w % window:
        raise ValueError(f"GSWA needs H, W multiples of the window {window}, got {h}x{w}")
    if shift:
        x = np.roll(x, (-shift, -shift), axis=(2, 3))
    n, cv = window * window, c - 2 * key_dim
    windows = _partition(x, window)  # (B*nW, C, window, window)
    q = _depthwise_in_window(windows[:, :key_dim], dw_weight, dw_bias).reshape(-1, key_dim, n)
    k, v = windows[:, key_dim:2 * key_dim].reshape(-1, key_dim, n), windows[:, 2 * key_dim:].reshape(-1, cv, n)
    logits = np.matmul(q.transpose(0, 2, 1), k).reshape(b, -1, n, n)
    logits *= np.float32(scale)
    logits += np.asarray(bias_table, np.float32).reshape(-1)[_relative_position_index(window)]
    if shift:
        logits += _shift_mask(h, w, window, shift)
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    out = np.matmul(v, logits.reshape(-1, n, n).transpose(0, 2, 1))  # (B*nW, Cv, N)
    out = _reverse(out.reshape(-1, cv, window, window), window, h, w)
    return np.roll(out, (shift, shift), axis=(2, 3)) if shift else out


def _partition(x: np.ndarray, window: int) -> np.ndarray:
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // window, window, w // window, window)
    return np.ascontiguousarray(x.transpose(0, 2, 4, 1, 3, 5)).reshape(-1, c, window, window)


def _reverse(windows: np.ndarray, window: int, h: int, w: int) -> np.ndarray:
    c = windows.shape[1]
    x = windows.reshape(-1, h // window, w // window, c, window, window)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 4, 2, 5)).reshape(-1, c, h, w)


def _depthwise_in_window(q: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Depthwise conv (cross-correlation, as torch's conv2d) of each window with zero padding at its border."""
    kh, kw = weight.shape[-2:]
    pad = ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2))
    padded = np.pad(q, pad)
    weight = np.asarray(weight, np.float32).reshape(-1, kh, kw)
    out = np.empty_like(q)
    out[:] = np.asarray(bias, np.float32)[None, :, None, None]
    side_h, side_w = q.shape[-2:]
    for i in range(kh):
        for j in range(kw):
            out += weight[None, :, i, j, None, None] * padded[:, :, i:i + side_h, j:j + side_w]
    return out


@functools.lru_cache(maxsize=8)
def _relative_position_index(window: int) -> np.ndarray:
    yy, xx = (a.ravel() for a in np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    dy = yy[:, None] - yy[None, :] + window - 1
    dx = xx[:, None] - xx[None, :] + window - 1
    return dy * (2 * window - 1) + dx


@functools.lru_cache(maxsize=32)
def _shift_mask(h: int, w: int, window: int, shift: int) -> np.ndarray:
    """(nW, N, N): MASK_VALUE between tokens of different regions of the shifted image, else 0."""
    def regions(size: int) -> np.ndarray:
        pos = np.arange(size)
        return (pos >= size - window).astype(np.int64) + (pos >= size - shift)

    labels = (regions(h)[:, None] * 3 + regions(w)[None, :]).astype(np.float32)[None, None]
    labels = _partition(labels, window).reshape(-1, window * window)
    return (labels[:, :, None] != labels[:, None, :]).astype(np.float32) * np.float32(MASK_VALUE)


def retarget_plugin_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of `proto` whose plugin nodes point at the onnxruntime-extensions Python op.

    Python ops cannot take float16 (onnxruntime-extensions aborts the process), so an FP16 plugin node
    runs the FP32 op between Casts: FP16 in and out, FP32 inside, as the kernel accumulates."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    dtype_of = _value_dtypes(proto)
    nodes = []
    for node in proto.graph.node:
        if is_gswa_node(node):
            node.domain = _contrib_domain
            if dtype_of.get(node.input[0]) == onnx.TensorProto.FLOAT16:
                qkv, out = node.input[0], node.output[0]
                node.input[0], node.output[0] = f"{qkv}__f32", f"{out}__f32"
                nodes.append(onnx.helper.make_node("Cast", [qkv], [node.input[0]], to=onnx.TensorProto.FLOAT))
                nodes += [node, onnx.helper.make_node("Cast", [node.output[0]], [out], to=onnx.TensorProto.FLOAT16)]
                continue
        nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    if not any(op.domain == _contrib_domain for op in proto.opset_import):
        proto.opset_import.add(domain=_contrib_domain, version=1)
    return proto


def _value_dtypes(proto: onnx.ModelProto) -> dict[str, int]:
    infos = list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in infos}


def create_session(path_or_proto: str | Path | onnx.ModelProto, providers: list[str] | None = None,
                   threads: int = 0, optimize: bool = True):
    """The one way agileir opens an onnxruntime.InferenceSession: either export form (the plugin node through
    onnxruntime-extensions), CUDA EP first when available; `threads` bounds intra- and inter-op threads;
    `optimize=False` runs the graph as written (ORT's calibrators do)."""
    import onnxruntime as ort

    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else read_onnx(path_or_proto, True)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if any(is_gswa_node(n) for n in proto.graph.node):
        _register_plugin_op()
        from onnxruntime_extensions import get_library_path

        options.register_custom_ops_library(get_library_path())
        proto = retarget_plugin_nodes(proto)
    if providers is None:
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(proto.SerializeToString(), options, providers=providers)


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on either export form, any precision. `device` (agileir.runtime.devices): auto (CUDA EP where
    onnxruntime-gpu has a usable GPU, else the CPU), cpu, cuda[:N] (DeviceUnavailable when not usable);
    `providers` given explicitly replace that choice."""

    backend = "onnxruntime"

    def __init__(self, path_or_proto: str | Path | onnx.ModelProto, providers: list | None = None,
                 threads: int = 0, name: str | None = None, device: str = "auto") -> None:
        from .artifacts import onnx_metadata, onnx_precision
        from .devices import ort_providers

        if isinstance(path_or_proto, onnx.ModelProto):
            self.proto, name = path_or_proto, name or "in-memory graph"
        else:
            self.proto, name = read_onnx(path_or_proto, True), name or Path(path_or_proto).name
        meta = onnx_metadata(self.proto)
        if "scale" not in meta:
            raise ValueError(f"{name} has no agileir metadata (scale); export it with agileir-export")
        super().__init__(int(meta["scale"]), f"{name} ({meta.get('form', '?')} form)", onnx_precision(self.proto),
                         window=int(meta.get("window", 1)))
        self.name, self.requested_device = name, device if providers is None else "auto"
        self.providers = providers if providers is not None else ort_providers(device)  # a missing CUDA: here
        self.threads = threads
        self.config = meta.get("config") if isinstance(meta.get("config"), dict) else None
        self.session = None
        self._dtype: type = np.float32

    def _activate(self) -> None:
        from .devices import CUDA_EP, check_session_device, device_line

        self.session = create_session(self.proto, self.providers, self.threads)
        self.device = check_session_device(self.session, self.requested_device, self.name)
        asked_cuda = any((p[0] if isinstance(p, tuple) else p) == CUDA_EP for p in self.providers)
        why = "" if self.device != "cpu" else (
            "ONNX Runtime's CUDA provider did not start" if asked_cuda else "ONNX Runtime has no CUDA provider here")
        self.device_line = device_line(self.device, self.requested_device, why)
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._dtype = np.float16 if "float16" in inp.type else np.float32
        self.description += f" on {self.session.get_providers()[0]}"

    def _deactivate(self) -> None:
        self.session = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        assert self.session is not None
        out = self.session.run(None, {self._input_name: batch.astype(self._dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)
