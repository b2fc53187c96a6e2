"""GPU numerics of the fused GSWA kernel against the PyTorch reference (agileir.models.gswa.gswa).

The kernels are compiled from csrc/gswa_kernel.cu to PTX with NVRTC (agileir.plugins.ptx.compile_ptx, what the
Quickly-Deployable Plugin embeds), loaded with the cuda-python driver API and launched with the launch
parameters and scalar arguments from agileir.plugins.launch -- the same values the QDP's aot_impl returns.
The C launchers used by the C++ TensorRT plugin (gswa_forward_f32/f16) are checked too when nvcc is present.

Needs a CUDA device and cuda-python (``pip install cuda-python``, major version matching the driver); skipped
with the reason otherwise. Buffers are torch CUDA tensors when torch has CUDA, cuMemAlloc allocations if not.

    python -m pytest tests/test_plugin_kernel.py -m gpu -ra
"""
from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest

from agileir.plugins import launch
from gswa_cases import make_case

pytestmark = pytest.mark.gpu


# ------------------------------------------------------------------------------------------------ driver setup

class _Gpu:
    """Primary context of device 0, the two PTX modules and buffer helpers (torch or raw driver memory)."""

    def __init__(self):
        from agileir.plugins import ptx

        try:
            self.drv = drv = ptx.driver_module()
        except ptx.CudaPythonMissing as e:
            pytest.skip(f"{e}: GPU kernel tests not run")
        self.ok = drv.CUresult.CUDA_SUCCESS
        try:
            (err,) = drv.cuInit(0)
        except RuntimeError as e:  # no libcuda (no driver installed)
            pytest.skip(f"no CUDA driver ({str(e).splitlines()[0]}): GPU kernel tests not run")
        if err != self.ok:
            pytest.skip(f"no usable CUDA driver/device (cuInit: {err}): GPU kernel tests not run")
        err, count = drv.cuDeviceGetCount()
        if err != self.ok or count == 0:
            pytest.skip("no CUDA device: GPU kernel tests not run")
        err, self.dev = drv.cuDeviceGet(0)
        self._check(err, "cuDeviceGet")
        err, self.ctx = drv.cuDevicePrimaryCtxRetain(self.dev)
        self._check(err, "cuDevicePrimaryCtxRetain")
        self._check(drv.cuCtxSetCurrent(self.ctx)[0], "cuCtxSetCurrent")
        attr = drv.CUdevice_attribute
        major = self._attr(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        minor = self._attr(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        self.arch = major * 10 + minor
        try:
            import torch

            self.torch = torch if torch.cuda.is_available() else None
        except ImportError:
            self.torch = None
        self.modules = {}
        for dtype in ("f32", "f16"):
            code = ptx.compile_ptx(self.arch, dtype) + b"\0"
            err, module = drv.cuModuleLoadData(code)
            if err != self.ok:
                major_nvrtc, minor_nvrtc = ptx.nvrtc_version()
                pytest.skip(
                    f"cuModuleLoadData({dtype} PTX from NVRTC {major_nvrtc}.{minor_nvrtc}) failed with {err}: the "
                    "driver is probably older than NVRTC; install cuda-python matching the driver "
                    "(e.g. pip install 'cuda-python==12.*' for a CUDA 12 driver)"
                )
            self.modules[dtype] = module
        self._functions = {}

    def _check(self, err, what):
        if err != self.ok:
            raise RuntimeError(f"{what} failed: {err}")

    def _attr(self, attribute) -> int:
        err, value = self.drv.cuDeviceGetAttribute(attribute, self.dev)
        self._check(err, "cuDeviceGetAttribute")
        return int(value)

    def function(self, dtype, name):
        key = (dtype, name)
        if key not in self._functions:
            err, fn = self.drv.cuModuleGetFunction(self.modules[dtype], name.encode())
            self._check(err, f"cuModuleGetFunction({name})")
            self._functions[key] = fn
        return self._functions[key]

    # buffers: (device pointer int, keep-alive object)
    def upload(self, array: np.ndarray):
        array = np.ascontiguousarray(array)
        if self.torch is not None:
            t = self.torch.from_numpy(array).to("cuda")
            return t.data_ptr(), t
        err, ptr = self.drv.cuMemAlloc(max(array.nbytes, 1))
        self._check(err, "cuMemAlloc")
        self._check(self.drv.cuMemcpyHtoD(ptr, array.ctypes.data, array.nbytes)[0], "cuMemcpyHtoD")
        return int(ptr), _DriverBuffer(self.drv, ptr)

    def empty(self, shape, dtype):
        fill = np.full(shape, np.nan, dtype=dtype)  # NaN-poisoned so unwritten outputs fail the comparison
        return self.upload(fill)

    def download(self, ptr_and_keep, shape, dtype) -> np.ndarray:
        ptr, keep = ptr_and_keep
        if self.torch is not None:
            self.torch.cuda.synchronize()
            return keep.cpu().numpy().reshape(shape)
        out = np.empty(shape, dtype=dtype)
        self._check(self.drv.cuMemcpyDtoH(out.ctypes.data, ptr, out.nbytes)[0], "cuMemcpyDtoH")
        return out

    def launch(self, fn, grid, block, shared_bytes, pointers_in, scalars, pointer_out):
        values = (*pointers_in, *scalars, pointer_out)
        types = (*([ctypes.c_void_p] * len(pointers_in)), *([ctypes.c_int] * len(scalars)), ctypes.c_void_p)
        err = self.drv.cuLaunchKernel(fn, *grid, *block, shared_bytes, 0, (values, types), 0)[0]
        self._check(err, "cuLaunchKernel")
        self._check(self.drv.cuCtxSynchronize()[0], "cuCtxSynchronize (kernel fault?)")


class _DriverBuffer:
    def __init__(self, drv, ptr):
        self.drv, self.ptr = drv, ptr

    def __del__(self):
        try:
            self.drv.cuMemFree(self.ptr)
        except Exception:
            pass


@pytest.fixture(scope="module")
def gpu():
    return _Gpu()


def run_kernel(gpu, case, kernel_name=None, bucket=None):
    """Launch like the AOT plugin: launch.launch_config + launch.kernel_scalar_args (optionally forcing a kernel)."""
    node = launch.NodeSettings(case.key_dim, case.v_dim, case.window, case.shift, case.scale)
    cfg = launch.launch_config(case.dtype, case.B, case.C_total, case.H, case.W, node)
    name, smem = cfg.kernel_name, cfg.shared_bytes
    if kernel_name is not None:
        name, smem = kernel_name, launch.shared_bytes(case.window, *bucket)
    scalars = launch.kernel_scalar_args(case.B, case.C_total, case.H, case.W, node)
    qkv = gpu.upload(case.qkv_numpy())
    dw_w = gpu.upload(case.dw_weight.numpy()) if case.with_dw else (0, None)
    dw_b = gpu.upload(case.dw_bias.numpy()) if case.with_dw else (0, None)
    table = gpu.upload(case.bias_table.numpy())
    shape = (case.B, case.v_dim, case.H, case.W)
    out = gpu.empty(shape, case.out_dtype())
    gpu.launch(gpu.function(case.dtype, name), cfg.grid, cfg.block, smem,
               (qkv[0], dw_w[0], dw_b[0], table[0]), scalars, out[0])
    return gpu.download(out, shape, case.out_dtype()).astype(np.float32)


def _assert_close(case, got, label):
    ref = case.reference.numpy()
    assert np.isfinite(got).all(), f"{label}: non-finite outputs"
    err = float(np.abs(got - ref).max())
    assert err <= case.tolerance, f"{label}: max abs error {err:.3g} > {case.tolerance}"


# ------------------------------------------------------------------------------------------------ the grid

def _grid():
    for dtype, window, shifted, B, kd, vd in itertools.product(("f32", "f16"), (16, 8), (False, True), (1, 2), (16, 32), (8, 30)):
        sizes = ((16, 32), (48, 32)) if window == 16 else ((8, 24), (40, 16))
        for H, W in sizes:
            yield pytest.param(dtype, B, H, W, kd, vd, window, window // 2 if shifted else 0,
                               id=f"{dtype}-w{window}-s{window // 2 if shifted else 0}-b{B}-{H}x{W}-k{kd}-v{vd}")


@pytest.mark.parametrize("dtype,B,H,W,kd,vd,window,shift", list(_grid()))
def test_kernel_matches_reference(gpu, dtype, B, H, W, kd, vd, window, shift):
    case = make_case(dtype, B, H, W, kd, vd, window, shift, seed=B * 1000 + H + W + kd + vd + shift)
    _assert_close(case, run_kernel(gpu, case), launch.launch_config(dtype, B, case.C_total, H, W, launch.NodeSettings(kd, vd, window, shift)).kernel_name)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("kd,vd,window,shift,with_dw", [
    (10, 10, 8, 4, False),   # SwinIR-light head, no depthwise conv (null pointers)
    (64, 64, 16, 8, True),   # largest dims, generic kernel
    (40, 8, 16, 3, True),    # (64, 32) bucket, odd shift
    (1, 1, 8, 7, True),      # smallest dims, largest shift
])
def test_kernel_edge_dims(gpu, dtype, kd, vd, window, shift, with_dw):
    case = make_case(dtype, 1, 2 * window, 3 * window, kd, vd, window, shift, with_dw=with_dw, seed=kd + vd)
    _assert_close(case, run_kernel(gpu, case), f"{dtype} k{kd} v{vd}")


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_generic_kernel_handles_small_dims(gpu, dtype):
    """gswa_fwd_f32 / gswa_fwd_f16 (what the QDP embeds when the channel count is dynamic) on a small bucket."""
    case = make_case(dtype, 2, 32, 16, 32, 8, 16, 8, seed=7)
    got = run_kernel(gpu, case, kernel_name=launch.kernel_name(dtype, 64, 64), bucket=(64, 64))
    _assert_close(case, got, f"generic {dtype}")


# ------------------------------------------------------------------------------------------------ C launchers

@pytest.fixture(scope="module")
def c_launcher_library(gpu, tmp_path_factory):
    from agileir.plugins import NvccNotFound, compile_kernel_nvcc

    try:
        path = compile_kernel_nvcc(gpu.arch, tmp_path_factory.mktemp("gswa_c"), mode="shared")
    except NvccNotFound as e:
        pytest.skip(f"{e}: the C launchers (gswa_forward_*) were not checked")
    lib = ctypes.CDLL(str(path))
    for fn in (lib.gswa_forward_f32, lib.gswa_forward_f16):
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 9 + [ctypes.c_float, ctypes.c_void_p]
    return lib


@pytest.mark.parametrize("dtype,kd,vd,window,shift", [("f32", 32, 8, 16, 8), ("f16", 32, 8, 16, 0),
                                                      ("f32", 16, 30, 8, 4), ("f16", 10, 10, 8, 4)])
def test_c_launcher_matches_reference(gpu, c_launcher_library, dtype, kd, vd, window, shift):
    """gswa_forward_f32/f16: the entry points the C++ TensorRT plugin's enqueue calls."""
    case = make_case(dtype, 2, 3 * window, 2 * window, kd, vd, window, shift, seed=11)
    qkv = gpu.upload(case.qkv_numpy())
    dw_w, dw_b, table = (gpu.upload(t.numpy()) for t in (case.dw_weight, case.dw_bias, case.bias_table))
    shape = (case.B, vd, case.H, case.W)
    out = gpu.empty(shape, case.out_dtype())
    fn = c_launcher_library.gswa_forward_f16 if dtype == "f16" else c_launcher_library.gswa_forward_f32
    status = fn(qkv[0], dw_w[0], dw_b[0], table[0], out[0], case.B, case.C_total, case.H, case.W, kd, vd,
                window, shift, case.scale, None)
    assert status == 0
    gpu._check(gpu.drv.cuCtxSynchronize()[0], "cuCtxSynchronize")
    _assert_close(case, gpu.download(out, shape, case.out_dtype()).astype(np.float32), f"C launcher {dtype}")
