"""TensorRT Quickly-Deployable Plugin (``tensorrt.plugin``, TensorRT >= 10.9) for the GSWA plugin node.

Registers ``agileir::GroupShiftedWindowAttention`` (the same name / namespace / version "1" / attributes as
the C++ IPluginV3 in ``csrc/gswa_plugin.cpp`` and the ONNX node in docs/gswa.md) with an ahead-of-time
implementation: the fused kernel of ``csrc/gswa_kernel.cu`` compiled to PTX with NVRTC
(:func:`agileir.plugins.ptx.compile_ptx`) and launched by TensorRT itself, so engines built with it run
without Python. Launch parameters come from :mod:`agileir.plugins.launch`, exactly what the cuda-python
kernel test uses.

Importing this module needs neither TensorRT nor cuda-python; :func:`register` raises a one-line
RuntimeError when they are missing. (No ``from __future__ import annotations`` here: tensorrt.plugin reads
the annotations of the decorated functions.)

Attributes are declared as 1-element ``numpy.typing.NDArray[np.int32]`` / ``NDArray[np.float32]``, not ``int`` /
``float``: for built-in annotations tensorrt.plugin's creator converts a plugin field with ``int(field.data)`` /
``float(field.data)`` on a length-1 array, which NumPy >= 2.4 rejects ("only 0-dimensional arrays can be converted
to Python scalars"), while NDArray attributes are passed through as ``field.data.astype(dtype)``. The int32 /
float32 dtypes are also the field types of the C++ creator (kINT32 / kFLOAT32), so the ONNX parser converts the
node attributes the same way for both implementations.

TensorRT-RTX: ``tensorrt_rtx.plugin`` re-exports ``tensorrt_rtx_bindings.plugin``, which the 1.7 wheels
(tensorrt-rtx-cu13 1.7.1) do not contain, so QDPs cannot be used there; load libagileir_trt_plugins_rtx.so
(``cmake -DAGILEIR_TRT_FLAVOUR=rtx``, docs/plugin.md) instead.
"""
import threading
from dataclasses import replace
from typing import Tuple, Union

from agileir.models.gswa_node import OP_TYPE as PLUGIN_NAME
from agileir.models.gswa_node import PLUGIN_NAMESPACE
from agileir.plugins import launch
from agileir.runtime.tensorrt.versions import version_tuple

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MIN_TENSORRT = (10, 9)

_lock = threading.Lock()
_registered = False
_arch_override = None


def rtx_qdp_missing() -> str | None:
    """None when TensorRT-RTX is absent or its ``tensorrt_rtx.plugin`` could work; otherwise why QDPs cannot run
    with the installed TensorRT-RTX (the 1.7 wheels ship tensorrt_rtx.plugin, which re-exports
    tensorrt_rtx_bindings.plugin, without that module). Looks at the files only: imports nothing."""
    import importlib.util
    from pathlib import Path

    try:
        rtx = importlib.util.find_spec("tensorrt_rtx")
        bindings = importlib.util.find_spec("tensorrt_rtx_bindings")
    except (ImportError, ValueError):
        return None
    if rtx is None:
        return None
    dirs = list(bindings.submodule_search_locations or []) if bindings is not None else []
    if any((Path(d) / "plugin").is_dir() or list(Path(d).glob("plugin.*")) for d in dirs):
        return None
    return ("TensorRT-RTX's tensorrt_rtx.plugin needs tensorrt_rtx_bindings.plugin, which this TensorRT-RTX wheel "
            "lacks: use libagileir_trt_plugins_rtx.so (cmake -DAGILEIR_TRT_FLAVOUR=rtx) with TensorRT-RTX")


def import_tensorrt_plugin():
    """(tensorrt, tensorrt.plugin), or a one-line RuntimeError saying what is missing."""
    rtx_note = rtx_qdp_missing()
    rtx_note = f"; {rtx_note}" if rtx_note else ""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError(
            f"TensorRT is not installed: the {PLUGIN_ID} QDP needs TensorRT >= 10.9 (pip install 'tensorrt>=10.9')"
            + rtx_note
        ) from None
    except Exception as e:  # e.g. a wheel whose native libraries are missing
        first = f"{type(e).__name__}: {e}".splitlines()[0]
        raise RuntimeError(f"TensorRT is installed but failed to import ({first})") from None
    if not hasattr(trt, "Builder"):  # e.g. only the `tensorrt-stubs` type stubs are installed
        raise RuntimeError(f"TensorRT is not installed (only a `tensorrt` namespace without a runtime was "
                           f"found): the {PLUGIN_ID} QDP needs TensorRT >= 10.9{rtx_note}") from None
    version = getattr(trt, "__version__", "0.0")
    try:
        import tensorrt.plugin as trtp
    except ImportError:
        trtp = None
    if version_tuple(version)[:2] < MIN_TENSORRT or trtp is None or not hasattr(trtp, "aot_impl"):
        raise RuntimeError(
            f"TensorRT {version} has no tensorrt.plugin AOT support: the {PLUGIN_ID} QDP needs TensorRT >= 10.9 "
            "(on TensorRT 10.x < 10.9, e.g. JetPack 6, load libagileir_trt_plugins.so instead)"
        )
    return trt, trtp


def plan(dtype, node: launch.NodeSettings) -> tuple:
    """(kernel_name, (kmax, vmax), block_threads, shared_bytes) for one plugin node.

    ``node.v_dim`` may be None when the qkv channel count is not a build-time constant: the generic (64, 64)
    kernel is used then.
    """
    key_dim, window, shift = node.key_dim, node.window, node.shift
    if window not in launch.WINDOWS:
        raise ValueError(f"{PLUGIN_ID}: window_size must be 8 or 16, got {window}")
    if not 0 <= shift < window:
        raise ValueError(f"{PLUGIN_ID}: shift_size must be in [0, {window}), got {shift}")
    if node.v_dim is None:
        if not 1 <= key_dim <= launch.MAX_KEY_DIM:
            raise ValueError(f"{PLUGIN_ID}: key_dim must be in [1, 64], got {key_dim}")
        bucket = (launch.MAX_KEY_DIM, launch.MAX_V_DIM)
    else:
        bucket = launch.pick_bucket(key_dim, node.v_dim)
    return (
        launch.kernel_name(dtype, *bucket),
        bucket,
        launch.block_threads(window),
        launch.shared_bytes(window, *bucket),
    )


def aot_kernel(trt, trtp, qkv, node: launch.NodeSettings) -> tuple:
    """What the AOT implementation returns for a node whose qkv input is ``qkv`` (a tensorrt.plugin TensorDesc):
    (kernel name, PTX, launch parameters, the kernel's int32 scalars as symbolic expressions). ``node.v_dim`` is
    ignored: it follows from qkv's channel count (symbolic, or a constant that picks the kernel bucket)."""
    from agileir.plugins.ptx import compile_ptx

    dtype = "f16" if qkv.dtype == trt.float16 else "f32"
    B, C, H, W = (qkv.shape_expr[i] for i in range(4))
    v_known = int(C.constant_value()) - 2 * node.key_dim if C.is_constant else None
    name, bucket, threads, smem = plan(dtype, replace(node, v_dim=v_known))

    params = trtp.KernelLaunchParams()
    params.grid_x = launch.grid_blocks(B, H, W, node.window)
    params.block_x = threads
    params.shared_mem = smem
    scalars = launch.kernel_scalar_args(B, C, H, W, replace(node, v_dim=C - 2 * node.key_dim))
    extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in scalars])
    return name, compile_ptx(_ptx_arch(), dtype, bucket), params, extra_args


def _ptx_arch() -> int:
    from agileir.plugins.ptx import current_device_arch

    arch = _arch_override if _arch_override is not None else current_device_arch()
    if arch is None:
        raise RuntimeError(
            f"{PLUGIN_ID}: no CUDA device found to compile the kernel for; set AGILEIR_CUDA_ARCH (e.g. 87)"
        )
    return arch


def register(arch=None) -> str:
    """Register the QDP with TensorRT's plugin registry (idempotent) and return its id.

    ``arch`` (e.g. 87, "sm_90") fixes the PTX target; by default the current device's compute capability
    (or ``AGILEIR_CUDA_ARCH``) is used when TensorRT asks for the kernel during the engine build.
    """
    global _registered, _arch_override
    trt, trtp = import_tensorrt_plugin()
    with _lock:
        if arch is not None:
            from agileir.plugins.ptx import normalize_arch

            _arch_override = normalize_arch(arch)
        if _registered:
            return PLUGIN_ID
        _define(trt, trtp)
        _registered = True
    return PLUGIN_ID


def attr_scalar(value, kind=int):
    """The Python scalar of a plugin attribute: a 1-element array (how tensorrt.plugin passes NDArray
    attributes), a 0-d array or a plain number. Raises ValueError for anything with more than one element."""
    import numpy as np

    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{PLUGIN_ID}: expected a single value, got shape {arr.shape}")
    return kind(arr.reshape(-1)[0].item())


def attr_annotations():
    """{attribute: annotation} of the plugin attributes, in registration order (see the module docstring)."""
    import numpy as np
    import numpy.typing as npt

    return {"window_size": npt.NDArray[np.int32], "shift_size": npt.NDArray[np.int32],
            "key_dim": npt.NDArray[np.int32], "scale": npt.NDArray[np.float32]}


def _define(trt, trtp) -> None:
    ann = attr_annotations()
    I32, F32 = ann["window_size"], ann["scale"]

    @trtp.register(PLUGIN_ID)
    def gswa_desc(
        qkv: trtp.TensorDesc,
        dw_weight: trtp.TensorDesc,
        dw_bias: trtp.TensorDesc,
        bias_table: trtp.TensorDesc,
        window_size: I32,
        shift_size: I32,
        key_dim: I32,
        scale: F32,
    ) -> trtp.TensorDesc:
        if qkv.ndim != 4:
            raise ValueError(f"{PLUGIN_ID}: qkv must be (B, 2*key_dim + Cv, H, W)")
        out = qkv.like()
        out.shape_expr[1] = qkv.shape_expr[1] - 2 * attr_scalar(key_dim)
        return out

    @trtp.autotune(PLUGIN_ID)
    def gswa_autotune(qkv, dw_weight, dw_bias, bias_table, outputs):
        # qkv and the output share FP32 or FP16; the parameters are always FP32; everything LINEAR (NCHW).
        return [trtp.AutoTuneCombination("FP32|FP16, FP32, FP32, FP32, FP32|FP16", "LINEAR")]

    # tensorrt.plugin compares this parameter list with the registered inputs and attributes by name (inputs,
    # attributes, outputs, tactic), so it cannot be grouped; the work is aot_kernel's. The return annotation is
    # required.
    @trtp.aot_impl(PLUGIN_ID)
    def gswa_aot_impl(
        qkv, dw_weight, dw_bias, bias_table, window_size, shift_size, key_dim, scale, outputs, tactic
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        node = launch.NodeSettings(attr_scalar(key_dim), None, attr_scalar(window_size), attr_scalar(shift_size),
                                   attr_scalar(scale, float))
        return aot_kernel(trt, trtp, qkv, node)


def is_registered() -> bool:
    return _registered

