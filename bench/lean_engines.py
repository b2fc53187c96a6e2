"""Lean engines: graph size, TensorRT-RTX network and engine, ONNX Runtime CPU latency and parity of every export form
of the bundled default (AgileIR-light x4), FP32 and FP16.

    nice python bench/lean_engines.py [--model CKPT] [--forms attention,standard,plugin] [--sizes 64,128] [--runs 3]
                                      [--build fp16] [--build-timeout 900] [--out bench/results/lean_engines_cpu.json]

Per form x precision: ONNX nodes and bytes; TensorRT-RTX network layers by type (parsed here, on the CPU); with
--build, the engine's bytes and build seconds (`agileir build --target rtx` in a subprocess with a time limit;
one that runs out of time is reported as such). Per form (FP32 graph): ONNX Runtime CPU latency at each LR size
against PyTorch eager and against a plain static-size torch.onnx.export of the same weights (no graph
cleaning), medians of --runs rounds that call each runner once in a rotated order (a shared machine's drift
reaches all alike), and parity with PyTorch (max abs error, PSNR on the 8-bit image). The JSON is rewritten after every
measurement, so an interrupted run keeps what finished. The plugin form's network needs the RTX plugin library
(AGILEIR_TRT_PLUGIN_LIB); without it that row says so.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch


REPO = Path(__file__).resolve().parent.parent


def interleaved(runners: dict, runs: int) -> dict:
    """Median milliseconds per runner over `runs` rounds (agileir.runtime.bench.interleaved: one warm-up call each,
    then each round calls every runner once in a rotated order, so a shared machine's drift reaches every runner alike)."""
    from agileir.runtime.bench import interleaved as measure

    return {name: round(r["median_ms"], 1) for name, r in measure(runners, rounds=runs).items()}


def rtx_layers(path: Path) -> dict:
    import tensorrt_rtx as trt

    from agileir.runtime.tensorrt.builder import network_summary

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        return {"error": parser.get_error(0).desc().splitlines()[0] if parser.num_errors else "parse failed"}
    return network_summary(trt, network)


def rtx_build(path: Path, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    engine = path.with_suffix(".plan")
    start = time.time()
    try:
        r = subprocess.run([sys.executable, "-m", "agileir", "build", str(path), "-o", str(engine), "--target", "rtx"],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"not finished within {timeout:.0f} s"}
    if r.returncode != 0:
        return {"status": "failed", "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    return {"status": "built", "engine_bytes": sidecar["engine_bytes"], "build_s": sidecar["build_s"],
            "wall_s": round(time.time() - start, 1)}


def parity(session, model, lr: np.ndarray) -> dict:
    with torch.no_grad():
        want = model(torch.from_numpy(lr)).numpy()
    got = session.run(None, {"lr": lr})[0]
    a, b = (np.clip(np.round(x * 255), 0, 255) for x in (got, want))
    mse = float(((a - b) ** 2).mean())
    return {"max_abs_err": float(np.abs(got - want).max()),
            "psnr_db_8bit": round(10 * np.log10(255 ** 2 / mse), 2) if mse else float("inf")}


def plain_static_session(model, side: int, tmp: Path):
    """torch.onnx.export of the same fused model at one static size: no slimming, folding or form routing."""
    from agileir.export import onnx_export as ox
    from agileir.runtime.ort import create_session

    path = tmp / f"plain_{side}.onnx"
    ox._trace_to_onnx(model, path, ox.ExportOptions(static_shape=(1, 3, side, side)))
    return create_session(onnx.load(str(path)))


def measure_form(form: str, loaded, args, tmp: Path, save, row: dict) -> None:
    from agileir.calibration.fp16 import to_fp16
    from agileir.export.onnx_export import annotate, export_onnx
    from agileir.runtime.ort import create_session

    t0 = time.time()
    proto = export_onnx(loaded.model, form)
    row["export_s"] = round(time.time() - t0, 1)
    graphs = {"fp32": proto, "fp16": to_fp16(proto)}
    for precision, graph in graphs.items():
        annotate(graph, {"scale": loaded.config.scale, "window": loaded.config.window_size, "form": form})
        path = tmp / f"{form}.{precision}.onnx"
        onnx.save(graph, str(path))
        entry = {"onnx_nodes": len(graph.graph.node), "onnx_bytes": path.stat().st_size,
                 "ops": dict(collections.Counter(n.op_type for n in graph.graph.node).most_common(8)),
                 "rtx_network": rtx_layers(path)}
        row[precision] = entry
        save()
    if form != "plugin":
        session = create_session(proto)
        rng = np.random.default_rng(0)
        row["latency_ms"] = {}
        for side in args.sizes:
            lr = rng.random((1, 3, side, side), dtype=np.float32)
            row.setdefault("parity", {})[str(side)] = parity(session, loaded.model, lr)

            def eager(x=torch.from_numpy(lr)):
                with torch.no_grad():
                    loaded.model(x)
            runners = {"onnxruntime": lambda: session.run(None, {"lr": lr}), "pytorch_eager": eager}
            if form == "standard":  # the plain export does not depend on the form: once
                plain = plain_static_session(loaded.model, side, tmp)
                runners["plain_static_export_onnxruntime"] = lambda: plain.run(None, {"lr": lr})
            row["latency_ms"][str(side)] = interleaved(runners, args.runs)
            save()
    for precision in args.build:
        row[precision]["rtx_engine"] = rtx_build(tmp / f"{form}.{precision}.onnx", args.build_timeout)
        save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled AgileIR-light x4)")
    ap.add_argument("--forms", default="attention,standard,plugin")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default="", help="precisions to build engines for, e.g. fp16 or fp32,fp16")
    ap.add_argument("--build-timeout", type=float, default=900)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default="bench/results/lean_engines_cpu.json")
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.build = [p for p in args.build.split(",") if p]
    torch.set_num_threads(args.threads)

    from agileir import __version__
    from agileir.models import load_model

    loaded = load_model(args.model, fuse=True)
    if os.environ.get("AGILEIR_TRT_PLUGIN_LIB"):  # the plugin form's network needs the creator registered
        from agileir.runtime.tensorrt.env import load_plugin_library

        load_plugin_library(Path(os.environ["AGILEIR_TRT_PLUGIN_LIB"]), "rtx")
    result = {"toolkit_version": __version__, "model": loaded.path.name, "preset": loaded.preset,
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "note": "shared 2-core CI box, other jobs running: latencies are noisy"},
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "forms": {}}
    out = Path(args.out)

    def save():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        for form in args.forms.split(","):
            result["forms"][form] = {}
            measure_form(form, loaded, args, Path(tmp), save, result["forms"][form])
            save()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
