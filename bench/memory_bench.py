"""Peak RSS of upscaling one image, whole or auto-tiled, each case in a fresh process.

    python bench/memory_bench.py                 # the report: bench/results/memory_cpu.json
    python bench/memory_bench.py --calibrate     # whole-image points used to fit agileir/upscale/memory.py

Peak RSS: resource.getrusage(RUSAGE_SELF).ru_maxrss of the child (psutil is not needed); it includes
the interpreter + torch baseline, which the estimate models as its base term.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child(model: str, size: str, tile: str, budget: str | None) -> None:
    size = int(size)
    import numpy as np
    import torch

    from agileir.upscale.memory import estimate_peak, plan_tiling
    from agileir.models import build_model
    from agileir.models.config import SRConfig
    from agileir.upscale.arrays import apply_to_rgbs
    from agileir.runtime import load_runner

    torch.set_num_threads(2)
    if model.startswith("tiny"):
        config = SRConfig("agileir", 2, 24, (2, 2), (4, 4), 8, 2.0, (6, 6)) if model == "tiny-agileir" else \
            SRConfig("swinir", 3, 12, (2,), (3,), 8, 2.0)
        import tempfile

        from agileir.models import save_safetensors
        path = Path(tempfile.mkdtemp()) / "tiny.safetensors"
        save_safetensors(build_model(config), path)
        runner = load_runner(path)
    else:
        runner = load_runner(None if model == "default" else model)
    config = runner.config
    rgb = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    budget_bytes = None
    if budget:
        from agileir.upscale.memory import parse_size
        budget_bytes = parse_size(budget)
    plan = plan_tiling(config, size, size, runner.scale, tile=tile, budget=budget_bytes)
    t0 = time.perf_counter()
    apply_to_rgbs(runner.upscale, [rgb], runner.scale, plan.tile, plan.overlap, align=runner.window)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"model": model, "size": size, "tile": plan.tile, "auto_tiled": plan.auto,
                      "estimate_bytes": plan.estimate, "whole_image_estimate_bytes": estimate_peak(config, size, size, runner.scale),
                      "peak_rss_bytes": peak, "seconds": round(wall, 1)}))


def measure(model: str, size: int, tile: str = "0", budget: str | None = None, timeout: int = 1800) -> dict:
    cmd = [sys.executable, __file__, "--child", model, str(size), tile] + ([budget] if budget else [])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode:
        return {"model": model, "size": size, "tile": tile, "error": r.stderr.strip().splitlines()[-1:]}
    row = json.loads(r.stdout.strip().splitlines()[-1])
    row["peak_rss_mib"] = round(row["peak_rss_bytes"] / 2**20, 1)
    row["estimate_mib"] = round(row["estimate_bytes"] / 2**20, 1)
    row["estimate_error_pct"] = round(100 * (row["estimate_bytes"] / row["peak_rss_bytes"] - 1), 1)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5], sys.argv[5] if len(sys.argv) > 5 else None)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "memory_cpu.json"))
    ap.add_argument("--big-model", default="default", help="model for the 3000^2 case (default or tiny-agileir)")
    args = ap.parse_args()
    if args.calibrate:
        rows = [measure(m, s) for m, s in (("tiny-agileir", 128), ("tiny-agileir", 384), ("default", 64), ("default", 160))]
        print(json.dumps(rows, indent=1))
        return
    rows = [measure("tiny-agileir", 1024, "0"), measure("tiny-agileir", 1024, "auto", "2G"),
            measure(args.big_model, 3000, "auto", "2G"), measure("default", 1024, "auto", "2G", timeout=3600)]
    payload = {"host": {"cpus": os.cpu_count(), "note": "2 CPU cores shared with other jobs, nice 10, PyTorch CPU, "
                                                        "2 threads, one fresh process per row"},
               "budget": "--max-memory 2G for the auto rows; tile 0 = whole image",
               "models": {"default": "bundled AgileIR-light x4", "tiny-agileir": "tests' TINY_AGILEIR (x2, embed 24, "
                          "window 8), used for 3000^2 because the bundled model needs ~1 h for 3000^2 on 2 shared "
                          "cores, and for the whole-image row because the bundled model's whole 1024^2 (est. 11 GB) "
                          "and 3000^2 (est. 94 GB) would not fit this shared machine"},
               "big_model": args.big_model, "rows": rows,
               "calibration_fit": "agileir/upscale/memory.py constants fitted to bench/memory_bench.py --calibrate"}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
