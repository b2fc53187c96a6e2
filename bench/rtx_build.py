"""TensorRT-RTX ahead-of-time builds of the bundled default on this machine's CPU: parse time, layer count,
build time and engine size per form x precision, through `agileir build --target rtx`.

    python bench/rtx_build.py [--export DIR] [--timeout 1200] [--out bench/results/rtx_build_cpu.json]

DIR (default out/agileir-x4-all) gets `agileir-export --fp16 --int8` first when it lacks the six ONNX files.
The RTX plugin library comes from AGILEIR_TRT_PLUGIN_LIB / build/plugins, or is built into build/plugins-rtx
(CMake, PTX for compute_89, TensorRT 10.13.3 headers from ../shared/third_party). Each build runs in its own
process with a time limit; a build that runs out of time is reported as such, not left out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ["model.plugin", "model.plugin.fp16", "model.plugin.int8", "model", "model.fp16", "model.int8"]


def plugin_library() -> Path:
    from agileir.plugins import RTX_LIBRARY_NAME, build_plugin_library, find_plugin_library

    found = find_plugin_library(RTX_LIBRARY_NAME)
    if found:
        return found
    import importlib.util

    libs = Path(list(importlib.util.find_spec("tensorrt_rtx_libs").submodule_search_locations)[0])
    include = REPO.parent / "shared" / "third_party" / "tensorrt-headers" / "10.13.3" / "include"
    return build_plugin_library(build_dir=REPO / "build" / "plugins-rtx", cuda_archs="89-virtual", jobs=2,
                                flavour="rtx", include_dir=include, library_dir=libs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", default=str(REPO / "out" / "agileir-x4-all"))
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per build")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "rtx_build_cpu.json"))
    args = parser.parse_args()
    export = Path(args.export)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if not all((export / f"{v}.onnx").is_file() for v in VARIANTS):
        print(f"exporting the bundled default with --fp16 --int8 into {export} ...", flush=True)
        subprocess.run([sys.executable, "-m", "agileir", "export", "-o", str(export), "--fp16", "--int8"],
                       check=True, env=env)
    lib = plugin_library()
    engines = export / "rtx"
    engines.mkdir(exist_ok=True)
    rows = []
    for name in VARIANTS:
        engine = engines / f"{name}.plan"
        cmd = [sys.executable, "-m", "agileir", "build", str(export / f"{name}.onnx"), "-o", str(engine),
               "--target", "rtx", "--plugin-lib", str(lib)]
        print(f"building {name} ...", flush=True)
        start = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            status = f"not finished within {args.timeout:.0f} s (stopped)"
        row = {"variant": name, "form": "plugin" if ".plugin" in name else "standard",
               "precision": name.split(".")[-1] if name.split(".")[-1] in ("fp16", "int8") else "fp32",
               "onnx_bytes": (export / f"{name}.onnx").stat().st_size, "status": status,
               "wall_s": round(time.time() - start, 1)}
        if status == "ok":
            sidecar = json.loads(engine.with_suffix(".json").read_text())
            row |= {"parse_s": sidecar["parse_s"], "build_s": sidecar["build_s"], "engine_bytes": sidecar["engine_bytes"],
                    **sidecar["network"], "tensorrt_rtx": sidecar["tensorrt_version"],
                    "targets": sidecar["target_compute_capabilities"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    ratio = None
    by = {r["variant"]: r for r in rows}
    if "layers" in by.get("model", {}) and "layers" in by.get("model.plugin", {}):
        ratio = round(by["model"]["layers"] / by["model.plugin"]["layers"], 2)
    payload = {"host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "note": "one run; CPU ahead-of-time build (no GPU); other jobs may have shared the cores"},
               "model": "bundled AgileIR-light x4", "plugin_library": lib.name,
               "standard_to_plugin_layer_ratio": ratio, "results": rows}
    from agileir.io.atomic import write_json

    write_json(args.out, payload)
    print(f"{'variant':<20}{'status':<10}{'parse s':>8}{'layers':>8}{'plugin':>7}{'Q/DQ':>10}{'build s':>9}{'MB':>8}")
    for r in rows:
        ok = r["status"] == "ok"
        qdq = f"{r.get('quantize_layers', 0)}/{r.get('dequantize_layers', 0)}" if ok else "-"
        print(f"{r['variant']:<20}{'ok' if ok else 'no':<10}{r.get('parse_s', '-'):>8}{r.get('layers', '-'):>8}"
              f"{r.get('plugin_layers', '-'):>7}{qdq:>10}{r.get('build_s', '-'):>9}"
              f"{(r['engine_bytes'] / 1e6 if ok else 0):>8.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
