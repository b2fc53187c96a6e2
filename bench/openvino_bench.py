"""ONNX Runtime vs OpenVINO on the CPU, through the Python API (agileir.runtime.load_runner), interleaved.

    python bench/openvino_bench.py [--export DIR] [--nncf FILE] [--blocks 2x128,2x64,1x128,1x64,2x256,1x256]
                                   [--rounds 3] [--image PNG] [--out bench/results/openvino_cpu.json]
    python bench/openvino_bench.py --table bench/results/openvino_cpu.json     # the docs table

Rows, per block of thread count x LR size (square crop of a real photo):
  ort-fp32      ONNX Runtime CPU, DIR/model.onnx (standard form, FP32)
  ov-f32        OpenVINO CPU, the same file, f32 precision hint (agileir's default)
  ov-bf16       OpenVINO CPU, the same file, bf16 hint (what the CPU does with it: `hint_used`)
  ort-int8      ONNX Runtime CPU, DIR/model.int8.onnx (the toolkit's INT8 Q/DQ)
  ov-int8       OpenVINO CPU, the same INT8 Q/DQ file
  ov-nncf-int8  OpenVINO CPU, FILE: NNCF INT8 of DIR/model.onnx with the bundled calibration images
                (agileir calibrate's nncf-int8 row; --make-nncf makes it first when FILE does not exist)
Each round runs every row once, in an order rotated by one per round, after one warm-up run per row; medians.
Parity: PSNR of each row against the PyTorch FP32 reference (the bundled checkpoint) and against ort-fp32, on
the float output (RGB 0..1) and on the 8-bit image. The JSON is rewritten after each (threads, size) block.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
ROWS = ("ort-fp32", "ov-f32", "ov-bf16", "ort-int8", "ov-int8", "ov-nncf-int8")
DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "train" / "BSD100_HR" / "img_001.png"


def make_nncf(export: Path, out: Path) -> dict:
    import onnx

    from agileir.calibration.dataset import load_images
    from agileir.calibration.peers import run_peer

    images = load_images()
    result = run_peer("nncf-int8", onnx.load(str(export / "model.onnx")), [im.rgb for im in images])
    if result.graph is None:
        raise SystemExit(f"error: NNCF INT8 failed: {result.skipped}")
    onnx.save(result.graph, str(out))
    return {"tool": result.tool, "seconds": result.seconds, "settings": result.settings, "images": len(images)}


def runners(export: Path, nncf: Path, threads: int, only: tuple[str, ...] = ROWS) -> dict:
    from agileir.runtime import load_runner

    files = {"ort-fp32": ("model.onnx", "onnxruntime-cpu", "f32"), "ov-f32": ("model.onnx", "openvino", "f32"),
             "ov-bf16": ("model.onnx", "openvino", "bf16"), "ort-int8": ("model.int8.onnx", "onnxruntime-cpu", "f32"),
             "ov-int8": ("model.int8.onnx", "openvino", "f32"), "ov-nncf-int8": (nncf, "openvino", "f32")}
    out = {}
    for row, (file, backend, hint) in files.items():
        if row not in only:
            continue
        t0 = time.perf_counter()
        out[row] = load_runner(str(export / file), backend=backend, threads=threads, ov_precision=hint,
                               echo=lambda _: None)
        out[row].activation_s = round(time.perf_counter() - t0, 2)
    return out


def psnrs(out: np.ndarray, ref: np.ndarray) -> dict:
    from agileir.io.images import to_uint8
    from agileir.quality.metrics import psnr

    a, b = np.clip(out, 0, 1), np.clip(ref, 0, 1)
    return {"float": round(psnr(a, b), 2), "8bit": round(psnr(to_uint8(a), to_uint8(b), peak=255.0), 2)}


def reference_output(x: np.ndarray) -> np.ndarray:
    """The PyTorch FP32 output of the bundled checkpoint (2 threads)."""
    import torch

    from agileir.runtime.pytorch import PyTorchRunner

    torch.set_num_threads(2)
    return PyTorchRunner(None, device="cpu").infer({"lr": x})["sr"]


def block(run: dict, x: np.ndarray, reference: np.ndarray, rounds: int, echo) -> dict:
    outs = {row: r.infer({"lr": x})["sr"] for row, r in run.items()}  # warm-up, and the parity outputs
    times: dict[str, list[float]] = {row: [] for row in run}
    order = list(run)
    for i in range(rounds):
        for row in order[i % len(order):] + order[:i % len(order)]:
            t0 = time.perf_counter()
            run[row].infer({"lr": x})
            times[row].append(time.perf_counter() - t0)
        echo(f"  round {i + 1}/{rounds}: " + ", ".join(f"{r} {times[r][-1]:.2f}s" for r in run))
    base = statistics.median(times["ort-fp32"])
    result = {}
    for row, r in run.items():
        median = statistics.median(times[row])
        result[row] = {"median_s": round(median, 3), "times_s": [round(t, 3) for t in times[row]],
                       "speedup_vs_ort_fp32": round(base / median, 2), "psnr_vs_pytorch": psnrs(outs[row], reference),
                       "psnr_vs_ort_fp32": psnrs(outs[row], outs["ort-fp32"]),
                       "runner": r.description, "hint_used": getattr(r, "precision_hint", None)}
    return result


def table(path: str) -> str:
    """The docs table (Markdown) of a results JSON: one line per row of each block, labelled in column 1."""
    data = json.loads(Path(path).read_text())
    lines = [f"<!-- bench: bench/results/{Path(path).name} -->",
             "| threads, LR px: row | median s | vs ort-fp32 | PSNR vs ORT FP32, 8-bit (dB) | PSNR vs PyTorch, 8-bit (dB) |",
             "|---|---|---|---|---|"]
    for block in data["results"]:
        for row, v in block["rows"].items():
            hint = f" ({v['hint_used']} used)" if row == "ov-bf16" else ""
            lines.append(f"| {block['threads']} threads, {block['lr']}: `{row}`{hint} | {v['median_s']:.3f} | "
                         f"{v['speedup_vs_ort_fp32']:.2f}x | {v['psnr_vs_ort_fp32']['8bit']} | "
                         f"{v['psnr_vs_pytorch']['8bit']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", default="/tmp/ovexport", help="agileir-export --int8 output folder")
    parser.add_argument("--nncf", default="/tmp/ovbench/model.nncf.int8.onnx", help="NNCF INT8 graph (made if absent)")
    parser.add_argument("--blocks", default="2x128,2x64,1x128,1x64,2x256,1x256",
                        help="THREADSxLR blocks, run in this order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="photo the LR crops are cut from")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "openvino_cpu.json"))
    parser.add_argument("--skip", default="", help="comma-separated rows to leave out, e.g. ov-bf16")
    parser.add_argument("--make-nncf", action="store_true", help="make FILE first when it does not exist (else "
                        "the row joins once FILE and its nncf.json appear, written by another process)")
    parser.add_argument("--table", metavar="JSON", help="only print the Markdown table of a results JSON")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return

    import openvino

    from agileir.io.gate import OutputGate
    from agileir.io.images import read_image
    from agileir.runtime.bench import host_info

    echo = lambda m: print(m, flush=True)  # noqa: E731
    export, nncf = Path(args.export), Path(args.nncf)
    gate = OutputGate([export / "model.onnx", export / "model.int8.onnx", args.image], overwrite=False)
    gate.claim(args.out, "benchmark report", "--out")
    payload = {"command": "python bench/openvino_bench.py " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "table"),
               "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "host": host_info() | {"cpu": openvino.Core().get_property("CPU", "FULL_DEVICE_NAME"),
                                      "openvino": openvino.__version__},
               "image": Path(args.image).name, "rounds": args.rounds, "nncf": None, "results": []}
    info = nncf.parent / "nncf.json"  # what make_nncf recorded when it made FILE
    if args.make_nncf and not nncf.is_file():
        echo(f"NNCF INT8 of {export / 'model.onnx'} ...")
        payload["nncf"] = make_nncf(export, nncf)
        gate.claim(info, "benchmark report", "NNCF record")
        gate.write_json(info, payload["nncf"], "benchmark report")
    photo = read_image(args.image).to_rgb()
    blocks = [tuple(int(v) for v in b.split("x")) for b in args.blocks.split(",")]
    wanted = tuple(r for r in ROWS if r not in args.skip.split(","))
    refs: dict[int, np.ndarray] = {}
    run: dict = {}
    for threads, s in blocks:
        x = np.ascontiguousarray(photo[:s, :s].transpose(2, 0, 1)[None], dtype=np.float32)
        if s not in refs:
            echo(f"PyTorch FP32 reference at {s}x{s} ...")
            refs[s] = reference_output(x)
        if not run or next(iter(run.values())).threads != threads:
            for r in run.values():
                r.deactivate()
            run = runners(export, nncf, threads, tuple(r for r in wanted if r != "ov-nncf-int8" or info.is_file()))
            echo(f"threads {threads}: activated " + ", ".join(f"{k} {r.activation_s}s" for k, r in run.items()))
        if "ov-nncf-int8" in wanted and "ov-nncf-int8" not in run and info.is_file():  # NNCF's file appeared meanwhile
            run |= runners(export, nncf, threads, ("ov-nncf-int8",))
        if info.is_file():
            payload["nncf"] = json.loads(info.read_text())
        echo(f"threads {threads}, {s}x{s} LR: {args.rounds} interleaved rounds ...")
        rows = block(run, x, refs[s], args.rounds, echo)
        payload["results"].append({"threads": threads, "lr": s, "loadavg": [round(v, 1) for v in os.getloadavg()],
                                   "activation_s": {k: r.activation_s for k, r in run.items()}, "rows": rows})
        gate.write_json(args.out, payload, "benchmark report")
        echo("  " + ", ".join(f"{k} {v['median_s']}s ({v['speedup_vs_ort_fp32']}x, "
                              f"{v['psnr_vs_ort_fp32']['8bit']} dB)" for k, v in rows.items()))
    echo(f"wrote {args.out}")


if __name__ == "__main__":
    main()
