"""Latency, throughput and memory of runners: per artifact (backend x precision) x input size.

Per configuration: `warmup` untimed calls, then `runs` timed calls of `runner.upscale` on a random
(batch, 3, size, size) input (tiled when beyond an engine profile, as users would run it). Memory:

* CPU backends: the process's peak RSS during the configuration (Linux: VmHWM after resetting it through
  /proc/self/clear_refs; elsewhere ru_maxrss, the lifetime peak); it includes the process's baseline.
* GPU backends (TensorRT, ONNX Runtime's CUDA EP): device memory in use (cudaMemGetInfo) after the runs
  minus before the runner was activated: engine, context and I/O buffers (which only grow).
"""
from __future__ import annotations

import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .base import Runner


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def uses_gpu(runner: Runner) -> bool:
    if runner.backend == "tensorrt":
        return True
    session = getattr(runner, "session", None)
    return session is not None and session.get_providers()[0] == "CUDAExecutionProvider"


def _gpu_used() -> int | None:
    """Device memory in use now, None without a CUDA device."""
    from .tensorrt.cudart import device_count, mem_get_info

    if device_count() == 0:
        return None
    free, total = mem_get_info()
    return total - free


def bench_runner(runner: Runner, sizes: list[int], runs: int = 10, warmup: int = 2, batch: int = 1,
                 artifact: str = "", seed: int = 0) -> list[dict]:
    """One result row per size; activates the runner (GPU memory is counted from before activation)."""
    if runs < 1 or warmup < 0 or batch < 1:
        raise ValueError("--runs must be >= 1, --warmup >= 0 and --batch >= 1")
    gpu_baseline = _gpu_used() if not runner.is_active else None
    runner.activate()
    on_gpu = uses_gpu(runner) and gpu_baseline is not None
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        x = rng.random((batch, 3, size, size), dtype=np.float32)
        exact_rss = _reset_peak_rss()
        for _ in range(warmup):
            runner.upscale(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            runner.upscale(x)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        out_px = batch * (size * runner.scale) ** 2
        row = {"artifact": artifact, "backend": runner.backend, "precision": runner.precision,
               "runner": runner.description, "input": [batch, 3, size, size], "runs": runs, "warmup": warmup,
               "latency_ms": {"median": median * 1e3, "p90": float(np.percentile(times, 90)) * 1e3,
                              "min": min(times) * 1e3, "mean": statistics.fmean(times) * 1e3},
               "images_per_s": batch / median, "output_mpix_per_s": out_px / 1e6 / median,
               "tiled": bool(runner.max_shape and size > min(runner.max_shape[1:]))}
        if on_gpu:
            row["gpu_mem_mib"] = ((_gpu_used() or 0) - (gpu_baseline or 0)) / 2**20
        else:
            row["peak_rss_mib"] = _peak_rss_mib()
            row["peak_rss_scope"] = "configuration" if exact_rss else "process lifetime"
        rows.append(row)
    return rows


def host_info() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "cuda-python"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    from .. import __version__

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
            "agileir": __version__, "packages": versions}


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'artifact':<22}{'backend':<13}{'prec':<6}{'input':>10}{'median ms':>11}{'p90 ms':>9}"
             f"{'img/s':>8}{'MP/s':>8}{'mem MiB':>9}"]
    for r in rows:
        mem = r.get("gpu_mem_mib", r.get("peak_rss_mib", float("nan")))
        lines.append(f"{Path(r['artifact']).name[:21]:<22}{r['backend']:<13}{r['precision']:<6}"
                     f"{'x'.join(map(str, r['input'][2:])):>10}{r['latency_ms']['median']:>11.1f}"
                     f"{r['latency_ms']['p90']:>9.1f}{r['images_per_s']:>8.2f}{r['output_mpix_per_s']:>8.2f}"
                     f"{mem:>9.0f}{' (tiled)' if r['tiled'] else ''}")
    return "\n".join(lines)
