"""Launch parameters of the fused GSWA kernel: the Python mirror of ``gswa_launch_config`` in
``csrc/gswa_kernel.cu``.

The Quickly-Deployable Plugin (:mod:`agileir.runtime.tensorrt.qdp`), the cuda-python kernel test and the benchmark
all call :func:`launch_config` and :func:`kernel_scalar_args`, so they launch the kernel exactly as the AOT
plugin does. ``tests/test_plugin_build.py`` checks that the constants below match ``gswa_kernel.h`` and
that this function agrees with the C one (built with nvcc, called through ctypes, no GPU needed).

Pure Python: no torch, TensorRT or CUDA imports.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

# Mirrors the #defines in csrc/gswa_kernel.h.
MAX_KEY_DIM = 64
MAX_V_DIM = 64
TILE_KEYS = 64
Q_CHUNK = 8
KEY_GROUP = 8
DW_TAPS = 25
SMEM_LIMIT = 49152
WINDOWS = (8, 16)

# (key-dim bucket, value-dim bucket), cheapest first; mirrors kBuckets in gswa_kernel.cu.
BUCKETS: tuple[tuple[int, int], ...] = ((16, 8), (16, 16), (32, 8), (32, 16), (32, 32), (64, 32), (64, 64))

# Order of the int32 scalar arguments between the input pointers (qkv, dw_weight, dw_bias, bias_table)
# and the output pointer in every gswa_fwd_* kernel.
SCALAR_ARGS = ("B", "C_total", "H", "W", "key_dim", "v_dim", "window", "shift", "scale_bits")

_DTYPE_TAGS = {"float32": "f32", "fp32": "f32", "f32": "f32", "float16": "f16", "fp16": "f16", "f16": "f16", "half": "f16"}


def dtype_tag(dtype) -> str:
    """'f32' or 'f16' for a dtype given as a string, a torch/numpy dtype or a tensorrt.DataType."""
    name = re.sub(r"[^a-z0-9]", "", str(dtype).lower().rsplit(".", 1)[-1])
    if name in ("float", "half"):  # tensorrt.DataType.FLOAT / HALF
        name = "float32" if name == "float" else "float16"
    try:
        return _DTYPE_TAGS[name]
    except KeyError:
        raise ValueError(f"GSWA kernels take float32 or float16 I/O, got {dtype!r}") from None


def pick_bucket(key_dim: int, v_dim: int) -> tuple[int, int]:
    """The cheapest (kmax, vmax) kernel bucket covering key_dim and v_dim."""
    if not (1 <= key_dim <= MAX_KEY_DIM and 1 <= v_dim <= MAX_V_DIM):
        raise ValueError(f"GSWA kernel supports key_dim and v_dim in [1, 64], got {key_dim} and {v_dim}")
    for kmax, vmax in BUCKETS:
        if key_dim <= kmax and v_dim <= vmax:
            return kmax, vmax
    raise AssertionError("unreachable: the last bucket is (64, 64)")


def kernel_name(dtype, kmax: int, vmax: int) -> str:
    """extern "C" symbol of the kernel for an I/O dtype and a bucket."""
    tag = dtype_tag(dtype)
    if (kmax, vmax) not in BUCKETS:
        raise ValueError(f"no GSWA kernel bucket ({kmax}, {vmax}); buckets are {BUCKETS}")
    if (kmax, vmax) == (MAX_KEY_DIM, MAX_V_DIM):
        return f"gswa_fwd_{tag}"
    return f"gswa_fwd_{tag}_k{kmax}_v{vmax}"


def all_kernel_names(dtype) -> list[str]:
    return [kernel_name(dtype, k, v) for k, v in BUCKETS]


def shared_bytes(window: int, kmax: int, vmax: int) -> int:
    """Dynamic shared memory of one block (the carve-up at the top of gswa_body)."""
    n = window * window
    tw = 2 * window - 1
    floats = max(Q_CHUNK * n, (kmax + vmax) * TILE_KEYS)
    floats += (tw * tw + 3) & ~3  # bias table
    floats += (kmax * DW_TAPS + 3) & ~3  # depthwise weights
    floats += kmax  # depthwise bias
    floats += 2 * n  # per-token (label, bias offset) and pixel offset
    return floats * 4


def grid_blocks(B, H, W, window: int):
    """Blocks of the 1-D grid: one per (batch, window). Works on ints and on tensorrt.plugin shape expressions."""
    return B * (H // window) * (W // window)


def block_threads(window: int) -> int:
    """Threads per block: one per query token of a window."""
    return window * window


@dataclass(frozen=True)
class NodeSettings:
    """One GSWA plugin node: its attributes (key_dim, window_size, shift_size, scale) and the value dim of its
    input (``v_dim``: an int, or a tensorrt.plugin shape expression where :func:`kernel_scalar_args` takes one)."""

    key_dim: int
    v_dim: Any
    window: int
    shift: int
    scale: float = 1.0


@dataclass(frozen=True)
class LaunchConfig:
    kernel_name: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int
    kmax: int
    vmax: int


def launch_config(dtype, B: int, C_total: int, H: int, W: int, node: NodeSettings) -> LaunchConfig:
    """Validate one GSWA call and return how to launch it (raises ValueError like the C status codes)."""
    key_dim, v_dim, window, shift = node.key_dim, node.v_dim, node.window, node.shift
    if window not in WINDOWS:
        raise ValueError(f"GSWA kernel: window must be 8 or 16, got {window}")
    if not 0 <= shift < window:
        raise ValueError(f"GSWA kernel: shift must be in [0, {window}), got {shift}")
    kmax, vmax = pick_bucket(key_dim, v_dim)
    if C_total != 2 * key_dim + v_dim:
        raise ValueError(f"GSWA kernel: qkv has {C_total} channels, expected 2*{key_dim} + {v_dim}")
    if B < 0 or H < window or W < window or H % window or W % window:
        raise ValueError(f"GSWA kernel: H, W must be positive multiples of the window {window}, got {H}x{W} (B={B})")
    blocks = grid_blocks(B, H, W, window)
    if blocks > 2**31 - 1 or H * W > 2**31 - 1:
        raise ValueError("GSWA kernel: too many windows / pixels for one launch")
    smem = shared_bytes(window, kmax, vmax)
    if smem > SMEM_LIMIT:
        raise ValueError(f"GSWA kernel: {smem} bytes of shared memory is over the {SMEM_LIMIT} limit")
    return LaunchConfig(kernel_name(dtype, kmax, vmax), (blocks, 1, 1), (block_threads(window), 1, 1), smem, kmax, vmax)


def scale_bits(scale: float) -> int:
    """The float32 bit pattern of ``scale`` as a signed int32 (the kernel's ``scale_bits`` argument)."""
    return struct.unpack("<i", struct.pack("<f", float(scale)))[0]


def kernel_scalar_args(B, C_total, H, W, node: NodeSettings) -> tuple:
    """The int32 scalars in the kernel's order (:data:`SCALAR_ARGS`); B, C_total, H, W and ``node.v_dim`` may be
    tensorrt.plugin shape expressions (the AOT plugin passes them symbolically)."""
    return (B, C_total, H, W, node.key_dim, node.v_dim, node.window, node.shift, scale_bits(node.scale))
