"""The few CUDA runtime calls the TensorRT builder and runner need, through cuda-python (`cuda.bindings.runtime`),
the way NVIDIA's samples/python/common_runtime.py does: every call returns (error, *results), checked here.

Imported lazily: a one-line RuntimeError says what is missing (cuda-python, a driver, a device).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def runtime_module() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:  # cuda-python 12.0 .. 12.5 have only the older layout
            from cuda import cudart as runtime
        except ImportError:
            runtime = None
    if runtime is None:
        raise RuntimeError("cuda-python is not installed (pip install cuda-python; the major version must match "
                           "the CUDA driver)") from None
    return runtime


def call(result: Any) -> Any:
    """Unpack a cuda.bindings.runtime result tuple, raising on an error code."""
    cudart = runtime_module()
    err, rest = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return rest[0] if len(rest) == 1 else (rest or None)


def device_count() -> int:
    """Number of CUDA devices; 0 when there is no driver or no device (never raises for that)."""
    try:
        cudart = runtime_module()
    except RuntimeError:
        return 0
    err, count = cudart.cudaGetDeviceCount()
    return int(count) if err == cudart.cudaError_t.cudaSuccess else 0


def device_info(device: int = 0) -> dict:
    """{'name': 'NVIDIA H100 ...', 'compute_capability': '9.0'} of a device."""
    props = call(runtime_module().cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return {"name": name.rstrip("\x00").strip(), "compute_capability": f"{props.major}.{props.minor}"}


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes of the current device."""
    free, total = call(runtime_module().cudaMemGetInfo())
    return int(free), int(total)


class DeviceBuffer:
    """cudaMalloc'd memory that grows on demand (never shrinks) and is freed by `free()`."""

    def __init__(self) -> None:
        self.ptr = 0
        self.nbytes = 0

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(call(runtime_module().cudaMalloc(nbytes)))
            self.nbytes = nbytes
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            call(runtime_module().cudaFree(self.ptr))
        self.ptr, self.nbytes = 0, 0


class Stream:
    def __init__(self) -> None:
        self.handle = call(runtime_module().cudaStreamCreate())

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def copy_to_device(self, dst: int, host: np.ndarray) -> None:
        cudart = runtime_module()
        call(cudart.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes,
                                    cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle))

    def copy_to_host(self, host: np.ndarray, src: int) -> None:
        cudart = runtime_module()
        call(cudart.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes,
                                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle))

    def synchronize(self) -> None:
        call(runtime_module().cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            call(runtime_module().cudaStreamDestroy(self.handle))
            self.handle = None
