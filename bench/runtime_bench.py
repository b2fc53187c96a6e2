"""Latency, throughput and peak memory of the deployed forms of one model, through `agileir bench`.

    python bench/runtime_bench.py [--export DIR] [--model CKPT] [--sizes 64,128,256] [--runs 10] [--warmup 2]
                                  [--threads N] [--out bench/results/runtime_cpu.json] [ARTIFACT ...]

Rows: PyTorch (the checkpoint), ONNX Runtime (DIR/model.onnx and DIR/model.plugin.onnx), then any extra
ARTIFACT (precision variants, TensorRT engines: on a GPU machine pass --out bench/results/runtime_gpu.json).
DIR defaults to out/agileir-x4 (README command 1 writes it); CKPT to the bundled model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", help="extra artifacts (ONNX variants, engines)")
    parser.add_argument("--export", default=str(REPO / "out" / "agileir-x4"), help="agileir-export output folder")
    parser.add_argument("--model", help="checkpoint for the PyTorch row [default: the bundled model]")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--runs", default="10")
    parser.add_argument("--warmup", default="2")
    parser.add_argument("--threads", default="0")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "runtime_cpu.json"))
    args = parser.parse_args()

    from agileir.cli import main as agileir
    from agileir.models.load import default_checkpoint

    export = Path(args.export)
    onnx_files = [export / "model.onnx", export / "model.plugin.onnx"]
    missing = [str(p) for p in onnx_files if not p.is_file()]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found: run `agileir-export -o {export}` first")
    checkpoint = args.model or str(default_checkpoint())
    artifacts = [checkpoint, *map(str, onnx_files), *args.artifacts]
    agileir.main(["bench", *artifacts, "--sizes", args.sizes, "--runs", args.runs, "--warmup", args.warmup,
                  "--threads", args.threads, "--json", args.out], prog_name="agileir")


if __name__ == "__main__":
    main()
