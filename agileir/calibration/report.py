"""`agileir calibrate`'s report: every precision x calibrator evaluated in ONNX Runtime CPU on benchmark
sets, beside published low-bit PTQ results on SwinIR-light, as JSON, Markdown and a bar plot."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import onnx

from ..io.atomic import atomic_path, write_json, write_text
from .calibrators import CALIBRATORS
from .dataset import DATA_DIR
from .memory import release_memory

BASELINES = DATA_DIR / "baselines.json"
REPORT_NAMES = ("calibration_report.json", "calibration_report.md", "calibration_report.png")
CAVEAT = ("The published rows are 4-bit (W4A4) fake-quantization research results on SwinIR-light with its "
          "own weights; our W8A8 rows are deployable graphs (explicit Q/DQ for TensorRT), our W6A6/W4A4/W8/W4 "
          "rows are exact fake quantization with int8 Q/DQ, all evaluated in ONNX Runtime CPU on the model "
          "named above. Compare drops (ΔPSNR against each model's own FP32) at equal bit width, not absolute "
          "PSNR, unless the model evaluated here is SwinIR-light itself.")


LATENCY_SIZE = 64  # LR side of the CPU latency probe
LATENCY_ROUNDS = 5  # interleaved rounds (each runs every variant once)


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str
    bits: str
    calibrator: str | None = None
    kind: str = "toolkit"  # toolkit | attention | sweep (other bit width) | peer (other tool, executed here)
    tool: str = "agileir"
    skipped: str | None = None  # why this row has no graph
    seconds: float | None = None  # time to calibrate / quantize it


def variant_list(calibrators: tuple[str, ...] = CALIBRATORS, fp16: bool = True) -> list[Variant]:
    out = [Variant("fp32", "fp32", "W32A32")]
    if fp16:
        out.append(Variant("fp16", "fp16", "W16A16"))
    out += [Variant(f"int8-{c}", "int8", "W8A8", c) for c in calibrators]
    return out


def load_baselines(scale: int) -> dict | None:
    data = json.loads(BASELINES.read_text())
    rows = data["scales"].get(str(scale))
    if rows is None:
        return None
    fp32 = next(r for r in rows if r["method"] == "FP32")
    for row in rows:
        for ds in ("Set5", "Set14"):
            if ds in row:
                row[ds]["delta_psnr"] = round(row[ds]["psnr"] - fp32[ds]["psnr"], 2)
    return {"model": data["model"], "description": data["description"], "sources": data["sources"], "rows": rows}


def build_report(model_info: dict, graphs: dict[str, onnx.ModelProto],
                 variants: list[Variant], datasets: list[Path], scale: int, evaluate_fn: Callable,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate every variant's graph (same form) on every dataset; ΔPSNR against our FP32 graph."""
    from ..upscale.upscaler import CallableRunner, Upscaler
    from .variants import batch_runner

    from .bits import qdq_counts

    results = []
    bicubic = {}
    for variant in variants:
        entry: dict[str, Any] = {"name": variant.name, "precision": variant.precision, "bits": variant.bits,
                                 "calibrator": variant.calibrator, "kind": variant.kind, "tool": variant.tool,
                                 "seconds": variant.seconds, "datasets": {}}
        if variant.skipped or variant.name not in graphs:
            results.append(entry | {"skipped": variant.skipped or "no graph"})
            continue
        graph = graphs[variant.name]
        run = batch_runner(graph, threads=model_info.get("threads", 0))
        upscaler = Upscaler(CallableRunner(run, scale))  # the memory budget of every image run
        entry["qdq"] = qdq_counts(graph)
        for dataset in datasets:
            res = evaluate_fn(upscaler.upscale_rgb, dataset, scale, progress)
            mean = res.summary()
            entry["datasets"][dataset.name] = {"psnr": mean["psnr"], "ssim": mean["ssim"],
                                               "per_image": [{k: r[k] for k in ("image", "psnr", "ssim")}
                                                             for r in res.per_image]}
            bicubic[dataset.name] = {"psnr": mean["bicubic_psnr"], "ssim": mean["bicubic_ssim"]}
        results.append(entry)
        del graph, run, upscaler
        release_memory()  # one variant's session alive at a time
    measured = [r["name"] for r in results if "skipped" not in r]
    model_info["latency"] = latency = variant_latency(graphs, measured, model_info.get("threads", 0))
    for entry in results:
        if entry["name"] in latency["ms"]:
            entry["cpu_latency_ms"] = latency["ms"][entry["name"]]["median_ms"]
            entry["cpu_latency"] = latency["ms"][entry["name"]]
    fp32 = next(r for r in results if r["name"] == "fp32")
    for entry in results:
        for name, d in entry.get("datasets", {}).items():
            d["delta_psnr"] = d["psnr"] - fp32["datasets"][name]["psnr"]
    return {"model": model_info, "metric": "PSNR/SSIM on Y, border crop = scale (BasicSR formulas)",
            "scale": scale, "variants": results, "bicubic": bicubic, "baselines": load_baselines(scale),
            "caveat": CAVEAT}


def variant_latency(graphs: Mapping[str, onnx.ModelProto], names: list[str], threads: int = 0,
                    size: int = LATENCY_SIZE, rounds: int = LATENCY_ROUNDS) -> dict:
    """ONNX Runtime CPU latency of the named graphs on one (1, 3, size, size) input, measured interleaved (each
    round runs each graph once, in rotated order) with a fresh session per timed run, warmed up once and freed
    after (agileir.runtime.bench.interleaved_fresh: one variant's session in memory at a time), with the threads
    and the load average before and after."""
    from ..runtime.bench import interleaved_fresh, machine_load
    from .variants import batch_runner

    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    before = machine_load(threads)

    def maker(name: str) -> Callable[[], Callable[[], object]]:
        def make():
            run = batch_runner(graphs[name], threads=threads)
            return lambda: run(x)
        return make

    ms = interleaved_fresh({name: maker(name) for name in names}, rounds=rounds)
    release_memory()
    return {"input": [1, 3, size, size], "order": "interleaved, rotated each round; a fresh session per timed run, "
            "warmed up once", "rounds": rounds, "threads": threads, "cpus": before["cpus"],
            "loadavg_before": before["loadavg"], "loadavg_after": machine_load(threads)["loadavg"], "ms": ms}


def markdown(report: dict) -> str:
    m = report["model"]
    names = list(report["bicubic"])
    lines = [f"# Calibration report: {m.get('file', '?')} ({m.get('arch', '?')}, x{report['scale']})", "",
             f"Evaluated in ONNX Runtime CPU, {m.get('form', 'standard')} form; {report['metric']}. "
             f"Calibration: {m.get('calibration_images', '?')}.", "",
             f"Q / DQ: QuantizeLinear / DequantizeLinear nodes; act.: activation tensors quantized; latency: "
             f"{_latency_legend(m)}; time: calibration + quantization.", "",
             "## Variants executed here (same FP32 graph, same calibration images, same metric code)", "",
             "| variant | bits | tool | Q / DQ | act. | latency ms | time s | "
             + " | ".join(f"{n} PSNR / SSIM | {n} ΔPSNR" for n in names) + " |",
             "|---|---|---|---|---|---|---|" + "---|---|" * len(names)]
    lines += [_variant_row(v, names) for v in report["variants"]]
    lines.append("| bicubic | - | - | | | | | " + " | ".join(
        f"{report['bicubic'][n]['psnr']:.3f} / {report['bicubic'][n]['ssim']:.4f} | " for n in names) + " |")
    lines += _equal_bits(report, names)
    base = report.get("baselines")
    if base:
        shown = ("Set5", "Set14")
        lines += ["", f"## Published PTQ results on {base['model']} (x{report['scale']})", "",
                  "| method | bits | " + " | ".join(f"{n} PSNR | {n} ΔPSNR" for n in shown) + " | source |",
                  "|---|---|" + "---|---|" * len(shown) + "---|"]
        for row in base["rows"]:
            cells = [f"{row[n]['psnr']:.2f}" + (f" / {row[n]['ssim']:.4f}" if "ssim" in row[n] else "")
                     + f" | {row[n]['delta_psnr']:+.2f}" for n in shown]
            refs = ", ".join(f"[{s}]({base['sources'][s]['url']})" for s in row["sources"])
            lines.append(f"| {row['method']} | {row['bits']} | " + " | ".join(cells) + f" | {refs} |")
        lines += ["", f"**Note.** {report['caveat']}", ""]
        lines += [f"- {k}: {s['title']} ({s['venue']}{', ' + s['table'] if 'table' in s else ''}), {s['url']}"
                  for k, s in base["sources"].items()]
    else:
        lines += ["", f"No published SwinIR-light PTQ baselines are recorded for x{report['scale']}."]
    study = report.get("fp16_study")
    if study:
        lines += ["", "## FP16: op types kept in FP32", "",
                  f"PSNR (dB, RGB, all pixels) of FP16 vs FP32 output on {study['image']} "
                  f"({study['form']} form). `ort_fp16`: the FP16 graph in ONNX Runtime CPU; `fp16_storage`: "
                  "every value an FP16 graph stores rounded to FP16 (see docs/calibration.md).", "",
                  "| kept FP32 | ort_fp16 | fp16_storage | non-finite |", "|---|---|---|---|"]
        for row in study["rows"]:
            lines.append(f"| {', '.join(row['blocked']) or '(none)'} | {row['ort_fp16_psnr_db']:.2f} | "
                         f"{row['fp16_storage_psnr_db']:.2f} | {row['ort_fp16_nonfinite'] + row['fp16_storage_nonfinite']} |")
    return "\n".join(lines) + "\n"


def _latency_legend(m: dict) -> str:
    lat = m.get("latency")
    if not lat:
        return f"median ONNX Runtime CPU run of a 1x3x{LATENCY_SIZE}x{LATENCY_SIZE} input"
    return (f"median (min-max) ONNX Runtime CPU run of a {'x'.join(map(str, lat['input']))} input over {lat['rounds']} "
            f"rounds, variants interleaved (each round runs each once, rotated order, in a fresh session warmed up "
            f"once); {lat['threads']} threads "
            f"(0 = all) on {lat['cpus']} CPUs; load average {lat['loadavg_before']} before, {lat['loadavg_after']} after")


def _latency_cell(v: dict) -> str:
    lat = v.get("cpu_latency")
    if not lat:
        return str(v.get("cpu_latency_ms", ""))
    return f"{lat['median_ms']:.1f} ({lat['min_ms']:.0f}-{lat['max_ms']:.0f})"


def _variant_row(v: dict, names: list[str]) -> str:
    head = f"| {v['name']} | {v['bits']} | {v['tool']} | "
    if v.get("skipped"):
        return head + f"skipped: {v['skipped']} |" + " |" * (3 + 2 * len(names))
    q = v.get("qdq", {})
    cells = [f"{v['datasets'][n]['psnr']:.3f} / {v['datasets'][n]['ssim']:.4f} | {v['datasets'][n]['delta_psnr']:+.3f}"
             for n in names]
    seconds = "" if v.get("seconds") is None else f"{v['seconds']:.0f}"
    return head + (f"{q.get('quantize_linear', 0)} / {q.get('dequantize_linear', 0)} | "
                   f"{q.get('quantized_activations', 0)} | {_latency_cell(v)} | {seconds} | ") + " | ".join(cells) + " |"


def _equal_bits(report: dict, names: list[str]) -> list[str]:
    """Our rows at each bit width the published rows use, beside those rows (ΔPSNR only: other weights)."""
    base = report.get("baselines")
    if not base:
        return []
    lines = []
    for bits in sorted({r["bits"] for r in base["rows"] if r["method"] != "FP32"}):
        ours = [v for v in report["variants"] if v["bits"] == bits and not v.get("skipped")]
        theirs = [r for r in base["rows"] if r["bits"] == bits]
        shown = [n for n in names if any(n in r for r in theirs)]
        if not ours or not shown:
            continue
        lines += ["", f"## {bits}: ours beside the published rows", "",
                  "| method | weights | " + " | ".join(f"{n} ΔPSNR" for n in shown) + " |",
                  "|---|---|" + "---|" * len(shown)]
        lines += [f"| {v['name']} | {report['model'].get('file', 'ours')} | "
                  + " | ".join(f"{v['datasets'][n]['delta_psnr']:+.2f}" for n in shown) + " |" for v in ours]
        lines += [f"| {r['method']} | {base['model']} (their weights) | "
                  + " | ".join(f"{r[n]['delta_psnr']:+.2f}" if n in r else "" for n in shown) + " |" for r in theirs]
    return lines


def bar_plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in report["bicubic"]]
    colors = {"fp16": "tab:green", "toolkit": "tab:blue", "attention": "tab:cyan", "sweep": "tab:orange",
              "peer": "tab:purple"}
    bars = [(v["name"] + f" ({v['bits']})", [v["datasets"][n]["delta_psnr"] for n in names],
             colors["fp16" if v["precision"] == "fp16" else v.get("kind", "toolkit")])
            for v in report["variants"] if v["name"] != "fp32" and not v.get("skipped")]
    base = report.get("baselines")
    if base:
        for row in base["rows"]:
            if row["method"] != "FP32":
                bars.append((f"{row['method']} ({row['bits']}, {base['model']})",
                             [row[n]["delta_psnr"] if n in row else np.nan for n in names], "tab:gray"))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 0.45 * len(bars) + 1.8), squeeze=False)
    for ax, (i, name) in zip(axes[0], enumerate(names)):
        labels = [b[0] for b in bars]
        values = [b[1][i] for b in bars]
        ax.barh(range(len(bars)), values, color=[b[2] for b in bars])
        ax.set_yticks(range(len(bars)), labels if i == 0 else [""] * len(bars), fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.margins(x=0.15)
        ax.set_title(f"{name} x{report['scale']}: ΔPSNR vs own FP32 (dB)")
        for y, v in enumerate(values):
            if np.isfinite(v):
                digits = 3 if bars[y][2] != "tab:gray" else 2
                ax.text(v, y, f" {v:+.{digits}f} ", va="center", ha="left" if v >= 0 else "right", fontsize=7)
    fig.suptitle("ONNX Runtime CPU: blue INT8 W8A8, cyan + attention INT8, orange other bit widths, purple other "
                 "tools, green FP16; gray: published SwinIR-light PTQ (their weights)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in REPORT_NAMES]
    with atomic_path(paths[2]) as tmp:  # the slowest (and likeliest to fail) first
        bar_plot(report, tmp)
    write_json(paths[0], report, indent=1)
    write_text(paths[1], markdown(report))
    return paths

