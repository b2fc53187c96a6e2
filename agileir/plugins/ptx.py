"""Compile ``csrc/gswa_kernel.cu`` to PTX with NVRTC (cuda-python), without TensorRT.

Used by the Quickly-Deployable Plugin's AOT implementation (:mod:`agileir.runtime.tensorrt.qdp`), by the
cuda-python kernel test and by the benchmark. NVRTC runs on the CPU: no GPU is needed to compile.

cuda-python is imported lazily; ``pip install cuda-python`` (or ``cuda-bindings``) with a major version
matching the CUDA driver of the machine that will load the PTX (PTX from NVRTC 13 needs a CUDA 13 driver).
"""
from __future__ import annotations

import functools
import importlib
import os
import re
from pathlib import Path

from agileir.plugins.launch import BUCKETS, dtype_tag

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
KERNEL_SOURCE = CSRC_DIR / "gswa_kernel.cu"
KERNEL_HEADER = CSRC_DIR / "gswa_kernel.h"


class CudaPythonMissing(RuntimeError):
    pass


def _cuda_module(name: str):
    """cuda.bindings.<name> (cuda-python >= 12.6 / cuda-bindings), else the older cuda.<name>."""
    for mod in (f"cuda.bindings.{name}", f"cuda.{name}"):
        try:
            return importlib.import_module(mod)
        except ImportError:
            continue
    raise CudaPythonMissing(f"cuda-python is not installed (needed for cuda.bindings.{name}): pip install cuda-python")


def nvrtc_module():
    return _cuda_module("nvrtc")


def driver_module():
    return _cuda_module("driver")


def normalize_arch(arch) -> int:
    """87 from 87, '87', 'sm_87', 'compute_87', '8.7', (8, 7)."""
    if isinstance(arch, (tuple, list)) and len(arch) == 2:
        return int(arch[0]) * 10 + int(arch[1])
    if isinstance(arch, int):
        return arch
    text = str(arch).strip().lower()
    m = re.fullmatch(r"(?:sm_|compute_)?(\d+)(?:\.(\d))?[a-z]?", text)
    if not m:
        raise ValueError(f"not a CUDA architecture: {arch!r} (expected e.g. 87, 'sm_87', '8.7')")
    if m.group(2) is not None:
        return int(m.group(1)) * 10 + int(m.group(2))
    return int(m.group(1))


def _check(result, what: str, nvrtc, prog=None):
    err = result[0] if isinstance(result, tuple) else result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = ""
        if prog is not None:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            buf = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, buf)
            log = buf.decode(errors="replace").rstrip("\x00 \n")
        _, msg = nvrtc.nvrtcGetErrorString(err)
        from . import first_error

        line, file = first_error(log)  # the compiler's first error and its file on the first line
        status = msg.decode() if isinstance(msg, bytes) else msg
        head = f"NVRTC {what} failed in {file}: {line}" if file else f"NVRTC {what} failed: {status}"
        raise RuntimeError(f"{head}\n{log}".rstrip())
    return result[1:] if isinstance(result, tuple) and len(result) > 1 else None


def nvrtc_version() -> tuple[int, int]:
    nvrtc = nvrtc_module()
    err, major, minor = nvrtc.nvrtcVersion()
    _check((err,), "nvrtcVersion", nvrtc)
    return int(major), int(minor)


@functools.lru_cache(maxsize=None)
def _compile_cached(arch: int, tag: str, bucket, source: str, header: str, extra: tuple[str, ...]) -> bytes:
    nvrtc = nvrtc_module()
    result = nvrtc.nvrtcCreateProgram(source.encode(), b"gswa_kernel.cu", 1, [header.encode()], [b"gswa_kernel.h"])
    (prog,) = _check(result, "nvrtcCreateProgram", nvrtc)
    try:
        opts = [
            f"--gpu-architecture=compute_{arch}".encode(),
            b"--std=c++17",
            b"-DGSWA_NO_F16" if tag == "f32" else b"-DGSWA_NO_F32",
            *([f"-DGSWA_ONLY_K={bucket[0]}".encode(), f"-DGSWA_ONLY_V={bucket[1]}".encode()] if bucket else []),
            *(o.encode() for o in extra),
        ]
        _check(nvrtc.nvrtcCompileProgram(prog, len(opts), opts), f"compile (compute_{arch}, {tag})", nvrtc, prog)
        (size,) = _check(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize", nvrtc)
        buf = b" " * size
        _check(nvrtc.nvrtcGetPTX(prog, buf), "nvrtcGetPTX", nvrtc)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return buf.rstrip(b"\x00")


def compile_ptx(arch, dtype, bucket: tuple[int, int] | None = None, extra_options: tuple[str, ...] = ()) -> bytes:
    """PTX (bytes, no trailing NUL) of the ``gswa_fwd_<dtype>*`` kernels for ``compute_<arch>``.

    ``dtype`` is float32/float16 in any spelling :func:`agileir.plugins.launch.dtype_tag` accepts.
    ``bucket`` = (kmax, vmax) from :func:`agileir.plugins.launch.pick_bucket` keeps only that kernel (what a
    plugin node embeds); None compiles all of them. Results are cached per (arch, dtype, bucket, source).
    Append ``b"\\0"`` before handing the PTX to cuModuleLoadData.
    """
    if bucket is not None:
        bucket = (int(bucket[0]), int(bucket[1]))
        if bucket not in BUCKETS:
            raise ValueError(f"no GSWA kernel bucket {bucket}; buckets are {BUCKETS}")
    return _compile_cached(
        normalize_arch(arch),
        dtype_tag(dtype),
        bucket,
        KERNEL_SOURCE.read_text(),
        KERNEL_HEADER.read_text(),
        tuple(extra_options),
    )


def ptx_kernel_names(ptx: bytes) -> list[str]:
    """Names of the .entry functions in a PTX module."""
    return [n.decode() for n in re.findall(rb"\.entry\s+([A-Za-z_][A-Za-z0-9_]*)", ptx)]


def current_device_arch(device: int = 0, use_env: bool = True) -> int | None:
    """Compute capability (e.g. 90) of CUDA device ``device``, or None when there is none.

    With ``use_env``, ``AGILEIR_CUDA_ARCH`` overrides the query (to target another GPU).
    """
    env = os.environ.get("AGILEIR_CUDA_ARCH") if use_env else None
    if env:
        return normalize_arch(env)
    try:
        drv = driver_module()
        (err,) = drv.cuInit(0)
        if err != drv.CUresult.CUDA_SUCCESS:
            raise RuntimeError
        err, dev = drv.cuDeviceGet(device)
        if err != drv.CUresult.CUDA_SUCCESS:
            raise RuntimeError
        attr = drv.CUdevice_attribute
        err, major = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        err2, minor = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        if err == drv.CUresult.CUDA_SUCCESS and err2 == drv.CUresult.CUDA_SUCCESS:
            return int(major) * 10 + int(minor)
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(device)
            return major * 10 + minor
    except Exception:
        pass
    return None
