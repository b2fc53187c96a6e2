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
"""
import threading
from typing import Tuple, Union

from agileir.models.gswa_node import OP_TYPE as PLUGIN_NAME
from agileir.models.gswa_node import PLUGIN_NAMESPACE, PLUGIN_VERSION
from agileir.plugins import launch
from agileir.runtime.tensorrt.env import version_tuple

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
MIN_TENSORRT = (10, 9)

_lock = threading.Lock()
_registered = False
_arch_override = None


def import_tensorrt_plugin():
    """(tensorrt, tensorrt.plugin), or a one-line RuntimeError saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError(
            f"TensorRT is not installed: the {PLUGIN_ID} QDP needs TensorRT >= 10.9 (pip install 'tensorrt>=10.9')"
        ) from None
    except Exception as e:  # e.g. a wheel whose native libraries are missing
        first = f"{type(e).__name__}: {e}".splitlines()[0]
        raise RuntimeError(f"TensorRT is installed but failed to import ({first})") from None
    if not hasattr(trt, "Builder"):  # e.g. only the `tensorrt-stubs` type stubs are installed
        raise RuntimeError(f"TensorRT is not installed (only a `tensorrt` namespace without a runtime was "
                           f"found): the {PLUGIN_ID} QDP needs TensorRT >= 10.9") from None
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


def plan(dtype, key_dim: int, v_dim, window: int, shift: int) -> tuple:
    """(kernel_name, (kmax, vmax), block_threads, shared_bytes) for one plugin node.

    ``v_dim`` may be None when the qkv channel count is not a build-time constant: the generic (64, 64)
    kernel is used then.
    """
    if window not in launch.WINDOWS:
        raise ValueError(f"{PLUGIN_ID}: window_size must be 8 or 16, got {window}")
    if not 0 <= shift < window:
        raise ValueError(f"{PLUGIN_ID}: shift_size must be in [0, {window}), got {shift}")
    if v_dim is None:
        if not 1 <= key_dim <= launch.MAX_KEY_DIM:
            raise ValueError(f"{PLUGIN_ID}: key_dim must be in [1, 64], got {key_dim}")
        bucket = (launch.MAX_KEY_DIM, launch.MAX_V_DIM)
    else:
        bucket = launch.pick_bucket(key_dim, v_dim)
    return (
        launch.kernel_name(dtype, *bucket),
        bucket,
        launch.block_threads(window),
        launch.shared_bytes(window, *bucket),
    )


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


def _define(trt, trtp) -> None:
    @trtp.register(PLUGIN_ID)
    def gswa_desc(
        qkv: trtp.TensorDesc,
        dw_weight: trtp.TensorDesc,
        dw_bias: trtp.TensorDesc,
        bias_table: trtp.TensorDesc,
        window_size: int,
        shift_size: int,
        key_dim: int,
        scale: float,
    ) -> trtp.TensorDesc:
        if qkv.ndim != 4:
            raise ValueError(f"{PLUGIN_ID}: qkv must be (B, 2*key_dim + Cv, H, W)")
        out = qkv.like()
        out.shape_expr[1] = qkv.shape_expr[1] - 2 * int(key_dim)
        return out

    @trtp.autotune(PLUGIN_ID)
    def gswa_autotune(qkv, dw_weight, dw_bias, bias_table, outputs):
        # qkv and the output share FP32 or FP16; the parameters are always FP32; everything LINEAR (NCHW).
        return [trtp.AutoTuneCombination("FP32|FP16, FP32, FP32, FP32, FP32|FP16", "LINEAR")]

    # tensorrt.plugin passes every registered attribute to the AOT function, in registration order, and
    # requires the return annotation.
    @trtp.aot_impl(PLUGIN_ID)
    def gswa_aot_impl(
        qkv, dw_weight, dw_bias, bias_table, window_size, shift_size, key_dim, scale, outputs, tactic
    ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]:
        from agileir.plugins.ptx import compile_ptx

        window, shift, kd = int(window_size), int(shift_size), int(key_dim)
        dtype = "f16" if qkv.dtype == trt.float16 else "f32"
        B, C, H, W = (qkv.shape_expr[i] for i in range(4))
        v_dim = C - 2 * kd
        v_known = int(C.constant_value()) - 2 * kd if C.is_constant else None
        name, bucket, threads, smem = plan(dtype, kd, v_known, window, shift)

        params = trtp.KernelLaunchParams()
        params.grid_x = launch.grid_blocks(B, H, W, window)
        params.block_x = threads
        params.shared_mem = smem
        scalars = launch.kernel_scalar_args(B, C, H, W, kd, v_dim, window, shift, float(scale))
        extra_args = trtp.SymIntExprs.from_tuple([trtp.SymInt32(e) for e in scalars])
        ptx = compile_ptx(_ptx_arch(), dtype, bucket)
        return name, ptx, params, extra_args


def is_registered() -> bool:
    return _registered

