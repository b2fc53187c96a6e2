"""Where the bytes of a TensorRT-RTX engine of the bundled plugin form go: target compute capabilities (the four
defaults vs one), precision, builder settings, and what the plan file holds (embedded CUDA ELF images, PTX, layer
names, weights), measured on this machine's CPU (ahead-of-time build, no GPU).

    python bench/engine_bytes.py [--export DIR] [--timeout 900] [--out bench/results/engine_bytes_cpu.json]

DIR (default out/agileir-x4-plugin) gets `agileir export --form plugin --fp16` first when it lacks the two ONNX
files. The RTX plugin library comes from `agileir plugin build --target rtx` (built on first use). Each build
runs in its own process with the profile `agileir build` uses (1x3x1x1 / 256x256 / 512x512).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILE = ((1, 3, 1, 1), (1, 3, 256, 256), (1, 3, 512, 512))
EM_CUDA = 190

# (name, ONNX variant, target compute capabilities ("" = TensorRT-RTX's default), builder settings)
CONFIGS = [
    ("fp32 default targets", "model.plugin", "", {}),
    ("fp32 sm_89", "model.plugin", "89", {}),
    ("fp16 default targets", "model.plugin.fp16", "", {}),
    ("fp16 sm_89", "model.plugin.fp16", "89", {}),
    ("fp32 sm_89, no layer names", "model.plugin", "89", {"profiling_verbosity": "NONE"}),
    ("fp32 sm_89, DISABLE_COMPILATION_CACHE", "model.plugin", "89", {"flags": ["DISABLE_COMPILATION_CACHE"]}),
    ("fp32 sm_89, STRIP_PLAN", "model.plugin", "89", {"flags": ["STRIP_PLAN"]}),
    ("fp32 sm_89, optimisation level 1", "model.plugin", "89", {"builder_optimization_level": 1}),
    ("fp32 sm_89, optimisation level 5", "model.plugin", "89", {"builder_optimization_level": 5}),
]


def plan_contents(plan: bytes) -> dict:
    """What the serialized plan holds, found by scanning it: CUDA ELF images (cubins: count and bytes from their
    ELF headers), PTX modules (`.version` directives), CUDA C source kept for the JIT compile on the user's GPU
    (text lines; the bytes of lines seen before, i.e. a prelude repeated per kernel module, and how many modules
    repeat it: the count of its `#include <climits>` line), and
    how well the plan compresses (zlib level 6)."""
    elf_count = elf_bytes = 0
    pos = plan.find(b"\x7fELF")
    while pos >= 0 and pos + 64 <= len(plan):
        machine = struct.unpack_from("<H", plan, pos + 0x12)[0]
        shoff, = struct.unpack_from("<Q", plan, pos + 0x28)
        shentsize, shnum = struct.unpack_from("<HH", plan, pos + 0x3A)
        size = shoff + shentsize * shnum
        if machine == EM_CUDA and 0 < size <= len(plan) - pos:
            elf_count += 1
            elf_bytes += size
            pos = plan.find(b"\x7fELF", pos + size)
        else:
            pos = plan.find(b"\x7fELF", pos + 4)
    lines = collections.Counter(re.findall(rb"[\t\x20-\x7e]{1,400}\n", plan))
    source = sum(len(line) * n for line, n in lines.items())
    repeated = sum(len(line) * (n - 1) for line, n in lines.items())
    return {"cuda_elf_images": elf_count, "cuda_elf_bytes": elf_bytes, "ptx_modules": plan.count(b".version "),
            "source_text_bytes": source, "repeated_source_bytes": repeated,
            "kernel_source_modules": lines.get(b"#include <climits>\n", 0),
            "zlib_bytes": len(zlib.compress(plan, 6))}


def worker(onnx_path: str, lib: str, caps: str, settings: dict) -> dict:
    import tensorrt_rtx as trt

    from agileir.runtime.tensorrt.env import load_plugin_library

    load_plugin_library(lib, flavour="rtx")
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        raise RuntimeError(str(parser.get_error(0)))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, *PROFILE)
    config.add_optimization_profile(profile)
    if caps:
        config.num_compute_capabilities = len(caps.split(","))
        for i, cc in enumerate(caps.split(",")):
            config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{cc}"), i)
    for flag in settings.get("flags", []):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if "builder_optimization_level" in settings:
        config.builder_optimization_level = settings["builder_optimization_level"]
    if "profiling_verbosity" in settings:
        config.profiling_verbosity = getattr(trt.ProfilingVerbosity, settings["profiling_verbosity"])
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    if plan is None:
        raise RuntimeError("build_serialized_network returned None")
    data = bytes(memoryview(plan))
    names = sum(len(network.get_layer(i).name) + 1 for i in range(network.num_layers))
    weights = sum(w.nbytes for i in range(network.num_layers) for w in _layer_weights(trt, network.get_layer(i)))
    return {"layers": network.num_layers, "engine_bytes": len(data), "build_s": round(build_s, 1),
            "bytes_per_layer": round(len(data) / network.num_layers), "layer_name_bytes": names,
            "network_weight_bytes": weights, **plan_contents(data)}


def _layer_weights(trt, layer):
    if layer.type == trt.LayerType.CONSTANT:
        layer.__class__ = trt.IConstantLayer
        return [layer.weights]
    return []


def _ensure_inputs(export: Path, env: dict) -> None:
    if not all((export / f"{v}.onnx").is_file() for v in ("model.plugin", "model.plugin.fp16")):
        print(f"exporting the bundled default (plugin form, FP32 + FP16) into {export} ...", flush=True)
        subprocess.run([sys.executable, "-m", "agileir", "export", "-o", str(export), "--form", "plugin", "--fp16"],
                       check=True, env=env)


def _plugin_library(env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "agileir", "plugin", "build", "--target", "rtx"], env=env,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", default=str(REPO / "out" / "agileir-x4-plugin"))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per build")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "engine_bytes_cpu.json"))
    parser.add_argument("--only", help="comma-separated config numbers (0-based) to run; their rows replace those "
                                       "of an existing --out file")
    parser.add_argument("--worker", nargs=4, metavar=("ONNX", "LIB", "CAPS", "SETTINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        onnx_path, lib, caps, settings = args.worker
        print("RESULT " + json.dumps(worker(onnx_path, lib, caps, json.loads(settings))), flush=True)
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    export = Path(args.export)
    _ensure_inputs(export, env)
    lib = _plugin_library(env)
    chosen = [CONFIGS[int(i)] for i in args.only.split(",")] if args.only else CONFIGS
    rows = [_run_config(config, export, lib, env, args.timeout) for config in chosen]
    if args.only and Path(args.out).is_file():  # re-measured rows replace theirs, the others are kept
        fresh = {r["config"]: r for r in rows}
        kept = json.loads(Path(args.out).read_text())["results"]
        rows = [fresh.pop(r["config"], r) for r in kept] + list(fresh.values())
    import tensorrt_rtx

    payload = {"host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
                        "note": "one run each; CPU ahead-of-time build (no GPU); other jobs shared the 2 cores"},
               "model": "bundled AgileIR-light x4, plugin form", "tensorrt_rtx": tensorrt_rtx.__version__,
               "profile": [list(p) for p in PROFILE], "results": rows}
    from agileir.io.atomic import write_json

    write_json(args.out, payload)
    print(f"{'config':<42}{'layers':>7}{'MB':>8}{'B/layer':>9}{'ELF':>6}{'ELF MB':>8}{'zlib MB':>8}{'build s':>8}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['config']:<42} {r['status']}")
            continue
        print(f"{r['config']:<42}{r['layers']:>7}{r['engine_bytes'] / 1e6:>8.1f}{r['bytes_per_layer']:>9}"
              f"{r['cuda_elf_images']:>6}{r['cuda_elf_bytes'] / 1e6:>8.1f}{r['zlib_bytes'] / 1e6:>8.1f}"
              f"{r['build_s']:>8}")
    print(f"wrote {args.out}")


def _run_config(config, export: Path, lib: str, env: dict, timeout: float) -> dict:
    name, variant, caps, settings = config
    onnx_path = export / f"{variant}.onnx"
    row = {"config": name, "variant": variant, "targets": caps or "default (8.0, 8.6, 8.9, 12.0)",
           "settings": settings, "onnx_bytes": onnx_path.stat().st_size}
    print(f"building {name} ...", flush=True)
    cmd = [sys.executable, __file__, "--worker", str(onnx_path), lib, caps, json.dumps(settings)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return row | {"status": f"not finished within {timeout:.0f} s (stopped)"}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        output = proc.stdout + proc.stderr
        errors = [x.split("[E] ", 1)[1] for x in output.splitlines() if "[E] " in x] or [proc.stderr.strip()[-300:]]
        return row | {"status": f"failed (exit {proc.returncode}): {' | '.join(errors)[-600:]}"}
    row |= {"status": "ok", **json.loads(line[len("RESULT "):])}
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
