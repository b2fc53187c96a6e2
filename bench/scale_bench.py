"""Scale-out measurements on this machine (CPU): `agileir batch` with 1 and 2 local actors vs `agileir-infer`
over the same folder, and the per-image overhead of serving through Triton (PyTriton, HTTP and gRPC) vs calling
the runner in-process. Writes bench/results/scale_cpu.json.

    python bench/scale_bench.py [--images 24] [--size 64] [--out bench/results/scale_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from agileir.models import SRConfig, build_model, save_safetensors

MODEL = SRConfig("swinir", 4, 30, (2, 2), (3, 3), 8, 2.0)  # small SwinIR-style x4, ~0.1 M parameters


def run(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t, r.stdout + r.stderr


def triton_overhead(onnx: Path, x: np.ndarray, repeats: int) -> dict:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from agileir.runtime import load_runner
    from agileir.cluster.serve import free_local_ports, start_server

    runner = load_runner(onnx, backend="onnxruntime-cpu")

    def timed(fn) -> float:
        fn()  # warm-up
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1e3

    inproc = timed(lambda: runner.upscale(x))
    http_port, grpc_port, metrics_port = free_local_ports(3)
    server = start_server(runner, "agileir_x4", http_port, grpc_port, metrics_port)
    out = {"in_process_ms": round(inproc, 2)}
    try:
        for kind, mod, port in (("http", httpclient, http_port), ("grpc", grpcclient, grpc_port)):
            client = mod.InferenceServerClient(f"127.0.0.1:{port}")
            inp = mod.InferInput("lr", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            ms = timed(lambda: client.infer("agileir_x4", [inp]).as_numpy("sr"))
            client.close()
            out[f"{kind}_ms"] = round(ms, 2)
            out[f"{kind}_overhead_ms"] = round(ms - inproc, 2)
    finally:
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default="bench/results/scale_cpu.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agileir-scale-"))
    torch.manual_seed(0)
    save_safetensors(build_model(MODEL), work / "model.safetensors")
    rng = np.random.default_rng(0)
    (work / "in").mkdir()
    for i in range(a.images):
        PILImage.fromarray((rng.random((a.size, a.size, 3)) * 255).astype(np.uint8)).save(work / "in" / f"{i:03d}.png")
    agileir = [sys.executable, "-m", "agileir"]
    model = str(work / "model.safetensors")
    result: dict = {"machine": f"{platform.node()} {os.cpu_count()} CPUs (shared), {platform.processor() or platform.machine()}",
                    "date": time.strftime("%Y-%m-%d %H:%M"), "model": MODEL.to_dict(), "backend": "pytorch (CPU)",
                    "images": a.images, "size": f"{a.size}x{a.size}", "runs": {}}
    wall, _ = run(agileir + ["infer", model, str(work / "in"), "-o", str(work / "infer")])
    result["runs"]["agileir-infer"] = {"wall_s": round(wall, 2), "images_per_s": round(a.images / wall, 3)}
    for actors in (1, 2):
        wall, log = run(agileir + ["batch", model, str(work / "in"), str(work / f"batch{actors}"),
                                   "--actors", str(actors), "--num-cpus", "3"])
        job = float(re.search(r"failed in ([\d.]+) s", log).group(1))
        result["runs"][f"agileir batch, {actors} actor(s)"] = {
            "wall_s": round(wall, 2), "images_per_s": round(a.images / wall, 3),
            "job_s (after Ray start)": round(job, 2), "job_images_per_s": round(a.images / job, 3)}
    base = result["runs"]["agileir-infer"]["images_per_s"]
    result["ratio_vs_infer (wall)"] = {k: round(v["images_per_s"] / base, 3) for k, v in result["runs"].items()}
    same = all((work / "batch1" / p.name).read_bytes() == p.read_bytes() for p in (work / "infer").glob("*.png"))
    result["batch_outputs_bit_identical_to_infer"] = same
    try:
        run(agileir + ["export", model, "-o", str(work / "exp"), "--form", "standard"])
        from agileir.io.images import read_image

        x = read_image(work / "in" / "000.png").to_rgb().transpose(2, 0, 1)[None].copy()
        result["triton_per_image"] = {"image": f"{a.size}x{a.size}", "runner": "onnxruntime-cpu, model.onnx",
                                      "repeats": a.repeats, "median": triton_overhead(work / "exp" / "model.onnx", x,
                                                                                      a.repeats)}
    except ImportError as e:
        result["triton_per_image"] = f"skipped: {e}"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
