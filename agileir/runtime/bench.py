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
from typing import Callable

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
        row = _row(runner, artifact, size, batch, runs, warmup, times)
        if on_gpu:
            row["gpu_mem_mib"] = ((_gpu_used() or 0) - (gpu_baseline or 0)) / 2**20
        else:
            row["peak_rss_mib"] = _peak_rss_mib()
            row["peak_rss_scope"] = "configuration" if exact_rss else "process lifetime"
        rows.append(row)
    return rows


def interleaved(calls: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1) -> dict[str, dict]:
    """Latency of compared calls measured INTERLEAVED: `warmup` untimed calls each, then `rounds` rounds that call
    each once, the order rotated by one every round, so a shared machine's changing load reaches every call alike.
    The one place compared latencies are measured (calibration report, `agileir bench`, benches). Per call:
    median, min and max milliseconds and the spread ((max - min) / median)."""
    if rounds < 1 or warmup < 0:
        raise ValueError("rounds must be >= 1 and warmup >= 0")
    for name in calls:
        for _ in range(warmup):
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for name in _rotated(list(calls), rounds):
        start = time.perf_counter()
        calls[name]()
        samples[name].append(time.perf_counter() - start)
    return {name: latency_summary(times) for name, times in samples.items()}


def interleaved_fresh(makers: dict[str, Callable[[], Callable[[], object]]], rounds: int = 5,
                      warmup: int = 1) -> dict[str, dict]:
    """`interleaved` for compared calls too large to keep alive together (the calibration report's 19 ONNX
    Runtime sessions held ~200 MB each): every timed call gets a fresh callable from its maker, warmed up by
    `warmup` untimed calls and dropped after, so one is alive at a time. Same rotated rounds and summary."""
    import gc

    if rounds < 1 or warmup < 0:
        raise ValueError("rounds must be >= 1 and warmup >= 0")
    samples: dict[str, list[float]] = {name: [] for name in makers}
    for name in _rotated(list(makers), rounds):
        call = makers[name]()
        for _ in range(warmup):
            call()
        start = time.perf_counter()
        call()
        samples[name].append(time.perf_counter() - start)
        del call
        gc.collect()
    return {name: latency_summary(times) for name, times in samples.items()}


def _rotated(names: list[str], rounds: int):
    """The names of `rounds` rounds, each round every name once, the order rotated by one every round."""
    for r in range(rounds):
        k = r % len(names) if names else 0
        yield from names[k:] + names[:k]


def latency_summary(times: list[float]) -> dict:
    median = statistics.median(times)
    return {"median_ms": round(median * 1e3, 2), "min_ms": round(min(times) * 1e3, 2),
            "max_ms": round(max(times) * 1e3, 2), "spread": round((max(times) - min(times)) / median, 3) if median else 0.0,
            "rounds": len(times), "samples_ms": [round(t * 1e3, 2) for t in times]}


def machine_load(threads: int | None = None) -> dict:
    """What a latency was measured under: CPUs, the threads the runners used (0: their default), load average."""
    import os

    return {"cpus": os.cpu_count(), "threads": threads, "loadavg": [round(x, 2) for x in os.getloadavg()]}


def bench_runners(runners: dict[str, Runner], sizes: list[int], runs: int = 10, warmup: int = 2, batch: int = 1,
                  seed: int = 0) -> list[dict]:
    """Several runners compared (`agileir bench a.onnx b.plan`): per size, `runs` interleaved rounds (each runs every
    runner once, rotated order). One runner: bench_runner (with its per-configuration memory). Compared, the CPU
    peak RSS is the process's over all runners of the size."""
    if len(runners) == 1:
        (name, runner), = runners.items()
        return bench_runner(runner, sizes, runs, warmup, batch, artifact=name, seed=seed)
    if runs < 1 or warmup < 0 or batch < 1:
        raise ValueError("--runs must be >= 1, --warmup >= 0 and --batch >= 1")
    for runner in runners.values():
        runner.activate()
    rng = np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {name: [] for name in runners}  # listed per runner, as bench_runner lists them
    for size in sizes:
        x = rng.random((batch, 3, size, size), dtype=np.float32)
        exact_rss = _reset_peak_rss()
        load = machine_load()
        ms = interleaved({name: (lambda r=runner: r.upscale(x)) for name, runner in runners.items()}, runs, warmup)
        for name, runner in runners.items():
            times = [t / 1e3 for t in ms[name]["samples_ms"]]
            row = _row(runner, name, size, batch, runs, warmup, times)
            row |= {"order": "interleaved, rotated each round", "spread": ms[name]["spread"],
                    "loadavg": load["loadavg"], "peak_rss_mib": _peak_rss_mib(),
                    "peak_rss_scope": "all compared runners" if exact_rss else "process lifetime"}
            rows[name].append(row)
    return [row for name in runners for row in rows[name]]


def _row(runner: Runner, artifact: str, size: int, batch: int, runs: int, warmup: int, times: list[float]) -> dict:
    median = statistics.median(times)
    return {"artifact": artifact, "backend": runner.backend, "precision": runner.precision,
            "runner": runner.description, "input": [batch, 3, size, size], "runs": runs, "warmup": warmup,
            "latency_ms": {"median": median * 1e3, "p90": float(np.percentile(times, 90)) * 1e3,
                           "min": min(times) * 1e3, "mean": statistics.fmean(times) * 1e3},
            "images_per_s": batch / median, "output_mpix_per_s": batch * (size * runner.scale) ** 2 / 1e6 / median,
            "tiled": bool(runner.max_shape and size > min(runner.max_shape[1:]))}


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
