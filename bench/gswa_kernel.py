#!/usr/bin/env python
"""Benchmark the fused GSWA kernel (GPU only).

Times, per head-group call at AgileIR-light x4 shapes (embed 96, 12 heads: key_dim 32, v_dim 8, window 16,
shifts 0 and 8; LR 320x180 and 960x540 padded to multiples of 16; FP16 and FP32):

  kernel     the fused kernel (NVRTC PTX, launched with cuda-python exactly as the TensorRT QDP would)
  reference  agileir.models.gswa.gswa on CUDA (PyTorch eager: roll, partition, conv, matmuls, softmax)
  sdpa       torch.nn.functional.scaled_dot_product_attention on pre-materialised windows (q after the
             depthwise conv) with an additive (bias + shift mask) attn_mask; the materialisation is not timed

and reports the kernel's achieved memory bandwidth (qkv bytes read + output bytes written, per second) against
the device's peak (2 x memory clock x bus width, from cuDeviceGetAttribute), plus its FP32-FMA throughput.

    python bench/gswa_kernel.py [--out bench/results/gswa_kernel.json] [--iters 50]

Exits with status 2 and a one-line message when there is no CUDA GPU (or no cuda-python / torch CUDA).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "bench" / "results" / "gswa_kernel.json"
EMBED, HEADS, KEY_DIM, WINDOW = 96, 12, 32, 16
V_DIM = EMBED // HEADS
RESOLUTIONS = {"320x180": (320, 180), "960x540": (960, 540)}  # LR width x height


def _fail(msg: str) -> int:
    print(f"gswa_kernel bench: {msg}", file=sys.stderr)
    return 2


def _pad(n: int, m: int) -> int:
    return (n + m - 1) // m * m


class KernelRunner:
    def __init__(self, drv, arch: int):
        from agileir.plugins import launch, ptx

        self.drv, self.launch, self.ptx, self.arch = drv, launch, ptx, arch
        self.ok = drv.CUresult.CUDA_SUCCESS
        self.functions = {}

    def function(self, dtype: str, bucket, name: str):
        key = (dtype, bucket)
        if key not in self.functions:
            code = self.ptx.compile_ptx(self.arch, dtype, bucket) + b"\0"
            err, module = self.drv.cuModuleLoadData(code)
            if err != self.ok:
                raise RuntimeError(f"cuModuleLoadData failed ({err}); NVRTC {self.ptx.nvrtc_version()} PTX vs driver?")
            err, fn = self.drv.cuModuleGetFunction(module, name.encode())
            if err != self.ok:
                raise RuntimeError(f"cuModuleGetFunction({name}) failed ({err})")
            self.functions[key] = (module, fn)
        return self.functions[key][1]

    def make_call(self, dtype, qkv, dw_w, dw_b, table, out, window, shift, scale, stream_handle):
        L = self.launch
        B, C, H, W = qkv.shape
        v_dim = out.shape[1]
        key_dim = (C - v_dim) // 2
        node = L.NodeSettings(key_dim, v_dim, window, shift, scale)
        cfg = L.launch_config(dtype, B, C, H, W, node)
        fn = self.function(dtype, (cfg.kmax, cfg.vmax), cfg.kernel_name)
        values = (qkv.data_ptr(), dw_w.data_ptr(), dw_b.data_ptr(), table.data_ptr(),
                  *L.kernel_scalar_args(B, C, H, W, node), out.data_ptr())
        types = (*([ctypes.c_void_p] * 4), *([ctypes.c_int] * 9), ctypes.c_void_p)
        drv, ok = self.drv, self.ok

        def call():
            err = drv.cuLaunchKernel(fn, *cfg.grid, *cfg.block, cfg.shared_bytes, stream_handle, (values, types), 0)[0]
            if err != ok:
                raise RuntimeError(f"cuLaunchKernel failed ({err})")

        return call, cfg


def _time_ms(torch, fn, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def _sdpa_inputs(torch, F, qkv, dw_w, dw_b, table, window, shift):
    from agileir.models.gswa import relative_position_index, shift_mask, window_partition

    q, k, v = qkv.split([KEY_DIM, KEY_DIM, V_DIM], dim=1)
    if shift:
        q, k, v = (torch.roll(t, shifts=(-shift, -shift), dims=(2, 3)) for t in (q, k, v))
    B, _, H, W = qkv.shape
    qw = F.conv2d(window_partition(q, window), dw_w.to(q.dtype), dw_b.to(q.dtype), padding=2, groups=KEY_DIM)
    n = window * window
    qs = qw.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B*nW, 1, N, Ck)
    ks = window_partition(k, window).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
    vs = window_partition(v, window).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # (B*nW, 1, N, Cv)
    idx = relative_position_index(window, qkv.device).reshape(-1)
    bias = table[idx].reshape(1, n, n)
    if shift:
        bias = bias + shift_mask(H, W, window, shift, qkv.device)  # (nW, N, N)
    n_w = (H // window) * (W // window)
    mask = bias.expand(n_w, n, n).repeat(B, 1, 1).unsqueeze(1).to(qkv.dtype).contiguous()  # (B*nW, 1, N, N)
    return qs, ks, vs, mask


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--resolutions", default=",".join(RESOLUTIONS), help="comma list of LR WxH (default: %(default)s)")
    ap.add_argument("--dtypes", default="f16,f32")
    ap.add_argument("--shifts", default=f"0,{WINDOW // 2}")
    ap.add_argument("--no-sdpa", action="store_true", help="skip the SDPA baseline (its mask is large)")
    args = ap.parse_args(argv)

    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return _fail("torch is not installed")
    if not torch.cuda.is_available():
        return _fail("no CUDA GPU (torch.cuda.is_available() is False); this benchmark needs one")
    from agileir.plugins import ptx

    try:
        drv = ptx.driver_module()
    except ptx.CudaPythonMissing as e:
        return _fail(str(e))
    try:
        (err,) = drv.cuInit(0)
    except RuntimeError as e:  # no libcuda
        return _fail(f"no CUDA driver ({str(e).splitlines()[0]})")
    if err != drv.CUresult.CUDA_SUCCESS:
        return _fail(f"cuInit failed ({err})")

    from agileir.models.gswa import WindowSpec, gswa
    from agileir.plugins import launch

    torch.manual_seed(0)
    dev_index = torch.cuda.current_device()
    torch.zeros(1, device="cuda")  # create torch's (primary) context first
    err, cu_dev = drv.cuDeviceGet(dev_index)
    attr = drv.CUdevice_attribute
    mem_khz = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, cu_dev)[1]
    bus_bits = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, cu_dev)[1]
    sms = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, cu_dev)[1]
    peak_gbps = 2.0 * mem_khz * 1e3 * bus_bits / 8 / 1e9
    major, minor = torch.cuda.get_device_capability(dev_index)
    arch = major * 10 + minor
    runner = KernelRunner(drv, arch)
    stream = torch.cuda.current_stream()

    report = {
        "device": torch.cuda.get_device_name(dev_index),
        "compute_capability": f"{major}.{minor}",
        "multiprocessors": int(sms),
        "memory_clock_khz": int(mem_khz),
        "memory_bus_width_bits": int(bus_bits),
        "peak_bandwidth_GBps": round(peak_gbps, 1),
        "nvrtc_version": ".".join(map(str, ptx.nvrtc_version())),
        "torch": torch.__version__,
        "config": {"embed": EMBED, "heads": HEADS, "key_dim": KEY_DIM, "v_dim": V_DIM, "window": WINDOW,
                   "batch": args.batch, "iters": args.iters, "warmup": args.warmup},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": [],
    }
    print(f"{report['device']} (sm_{arch}), peak {peak_gbps:.0f} GB/s")
    print(f"{'input':>9} {'HxW':>9} {'dtype':>5} {'shift':>5} {'kernel ms':>10} {'ref ms':>8} {'sdpa ms':>8} "
          f"{'GB/s':>7} {'%peak':>6} {'TFLOP/s':>8} {'max err':>9}")
    for res in args.resolutions.split(","):
        lr_w, lr_h = (int(x) for x in res.lower().split("x"))
        H, W = _pad(lr_h, WINDOW), _pad(lr_w, WINDOW)
        for dtype in args.dtypes.split(","):
            tdtype = torch.float16 if launch.dtype_tag(dtype) == "f16" else torch.float32
            for shift in (int(s) for s in args.shifts.split(",")):
                B, C = args.batch, 2 * KEY_DIM + V_DIM
                qkv = (torch.randn(B, C, H, W, device="cuda") * 0.5).to(tdtype)
                dw_w = torch.randn(KEY_DIM, 1, 5, 5, device="cuda") * 0.2
                dw_b = torch.randn(KEY_DIM, device="cuda") * 0.1
                table = torch.randn((2 * WINDOW - 1) ** 2, device="cuda") * 0.5
                out = torch.empty(B, V_DIM, H, W, device="cuda", dtype=tdtype)
                scale = KEY_DIM**-0.5
                call, cfg = runner.make_call(launch.dtype_tag(dtype), qkv, dw_w, dw_b, table, out, WINDOW, shift,
                                             scale, stream.cuda_stream)
                q, k, v = qkv.split([KEY_DIM, KEY_DIM, V_DIM], dim=1)

                def reference():
                    return gswa(q, k, v, (dw_w.to(tdtype), dw_b.to(tdtype)), table.to(tdtype), WindowSpec(WINDOW, shift, scale))

                with torch.no_grad():
                    call()
                    torch.cuda.synchronize()
                    ref32 = gswa(q.float(), k.float(), v.float(), (dw_w, dw_b), table, WindowSpec(WINDOW, shift, scale))
                    max_err = float((out.float() - ref32).abs().max())
                    t_kernel = _time_ms(torch, call, args.iters, args.warmup)
                    t_ref = _time_ms(torch, reference, max(5, args.iters // 5), 2)
                    t_sdpa = None
                    if not args.no_sdpa:
                        try:
                            qs, ks, vs, mask = _sdpa_inputs(torch, F, qkv, dw_w, dw_b, table, WINDOW, shift)
                            t_sdpa = _time_ms(torch, lambda: F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale),
                                              max(5, args.iters // 5), 2)
                            del qs, ks, vs, mask
                        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                            print(f"  sdpa skipped: {str(e).splitlines()[0]}")
                moved = (qkv.numel() + out.numel()) * qkv.element_size()
                gbps = moved / (t_kernel * 1e-3) / 1e9
                n = WINDOW * WINDOW
                windows = B * (H // WINDOW) * (W // WINDOW)
                flops = 2.0 * windows * n * n * (KEY_DIM + V_DIM) + 2.0 * B * H * W * KEY_DIM * 25
                row = {
                    "input": res, "H": H, "W": W, "batch": B, "dtype": launch.dtype_tag(dtype), "shift": shift,
                    "kernel": cfg.kernel_name, "grid": cfg.grid[0], "block": cfg.block[0], "shared_bytes": cfg.shared_bytes,
                    "kernel_ms": round(t_kernel, 4), "reference_ms": round(t_ref, 4),
                    "sdpa_ms": None if t_sdpa is None else round(t_sdpa, 4),
                    "speedup_vs_reference": round(t_ref / t_kernel, 2),
                    "speedup_vs_sdpa": None if t_sdpa is None else round(t_sdpa / t_kernel, 2),
                    "bytes_moved": moved, "achieved_GBps": round(gbps, 1),
                    "fraction_of_peak_bandwidth": round(gbps / peak_gbps, 4),
                    "kernel_TFLOPs": round(flops / (t_kernel * 1e-3) / 1e12, 2),
                    "max_abs_err_vs_fp32_reference": max_err,
                }
                report["results"].append(row)
                sdpa_txt = f"{t_sdpa:8.3f}" if t_sdpa is not None else f"{'-':>8}"
                print(f"{res:>9} {H:>4}x{W:<4} {row['dtype']:>5} {shift:>5} {t_kernel:10.3f} {t_ref:8.3f} {sdpa_txt} "
                      f"{gbps:7.0f} {100 * gbps / peak_gbps:5.1f}% {row['kernel_TFLOPs']:8.2f} {max_err:9.2e}")
                del qkv, out
                torch.cuda.empty_cache()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
