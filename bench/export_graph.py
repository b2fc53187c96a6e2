"""Graph size of the export forms, and ONNX Runtime CPU vs PyTorch eager CPU latency.

    python bench/export_graph.py [--model CKPT] [--sizes 64,128,256] [--runs 5] [--out bench/results/export_graph.json]

Forms: "naive" traces the reference GSWA op per head group as it is (a copy of the window bookkeeping per
head group), then every export form of agileir.export.forms (model.onnx, model.plugin.onnx,
model.attention.onnx).
Latency compares ONNX Runtime (standard form) with PyTorch eager on the same fused model, one
process, the same threads, one size at a time (eager runs, then ORT runs), median of --runs after one
warm-up each.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from agileir import __version__
from agileir.export import onnx_export as ox
from agileir.export.forms import FORMS
from agileir.models import load_model
from agileir.models.gswa import gswa, routed
from agileir.runtime.bench import interleaved, machine_load
from agileir.runtime.ort import create_session


def naive_export(model) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp, routed(per_call=gswa):
        path = Path(tmp) / "naive.onnx"
        ox._trace_to_onnx(model, path, ox.ExportOptions())
        return ox.clean_traced(onnx.load(str(path)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: bundled AgileIR-light x4)")
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default="bench/results/export_graph.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    loaded = load_model(args.model, fuse=True)
    model = loaded.model
    result = {"toolkit_version": __version__, "model": loaded.path.name, "preset": loaded.preset,
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
              "graphs": {}, "latency": []}
    protos = {}
    for form in ("naive", *FORMS):
        t = time.time()
        protos[form] = naive_export(model) if form == "naive" else ox.export_onnx(model, form)
        counts = ox.node_counts(protos[form])
        result["graphs"][form] = {"nodes": counts["total"], "max_per_block": counts["max_per_block"],
                                  "min_per_block": min(counts["per_block"].values()),
                                  "bytes": protos[form].ByteSize(), "export_s": round(time.time() - t, 1)}
        print(form, result["graphs"][form], flush=True)

    session = create_session(protos["standard"], ["CPUExecutionProvider"], threads=args.threads)
    for size in (int(s) for s in args.sizes.split(",")):
        x = torch.rand(1, 3, size, size)
        feed = {"lr": x.numpy()}
        def eager():
            with torch.inference_mode():
                model(x)
        ms = interleaved({"eager": eager, "ort": lambda: session.run(None, feed)}, rounds=args.runs)
        row = {"lr_size": size, "pytorch_eager_s": ms["eager"]["median_ms"] / 1e3,
               "ort_cpu_s": ms["ort"]["median_ms"] / 1e3, "runs": args.runs, "order": "interleaved, rotated",
               "spread": {k: v["spread"] for k, v in ms.items()}, **machine_load(args.threads)}
        row["speedup_ort_vs_eager"] = row["pytorch_eager_s"] / row["ort_cpu_s"]
        result["latency"].append(row)
        print(row, flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    print(f"{'size':>6} {'eager s':>9} {'ORT s':>9} {'ratio':>6}")
    for r in result["latency"]:
        print(f"{r['lr_size']:>6} {r['pytorch_eager_s']:>9.3f} {r['ort_cpu_s']:>9.3f} {r['speedup_ort_vs_eager']:>6.2f}")


if __name__ == "__main__":
    main()
