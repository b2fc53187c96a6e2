"""Export speed: `agileir-export --fp16` on the bundled default (standard + plugin forms, FP32 + FP16, validated),
per stage and form, against one PyTorch eager forward of the same model at 128x128 LR measured in the same process.

    nice python bench/export_speed.py [--label after] [--code DIR] [--forms standard,plugin] [--out JSON]

Each label runs in a child process whose `agileir` is imported from --code (default: this checkout), so the same
bench measures an older commit (`git worktree add /tmp/wt-before <sha>`; --label before --code /tmp/wt-before);
the JSON keeps one entry per label and rewrites only the label it ran. Per entry: the date, the load average
before and after, the eager forward (median of 3 after a warm-up, taken before and after the export; the ratio
uses their mean), the export's wall seconds and their ratio to the eager forward, seconds per stage and form
(from the library's progress events where the code has them, else by timing its stage functions), and the
longest gap between two output lines. Compare ratios within one entry: the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "results" / "export_speed.json"
# Stage functions of code without progress events: (module, attribute, stage name)
TIMED = [("agileir.export.onnx_export", "_trace_to_onnx", "trace"),
         ("agileir.export.onnx_export", "to_standard_attention", "attention opset"),
         ("agileir.export.onnx_export", "_slim", "clean (onnxslim)"),
         ("agileir.export.onnx_export", "fold_split_concat", "split/concat"),
         ("agileir.export.onnx_export", "fold_constant_nodes", "constant folding"),
         ("onnx.shape_inference", "infer_shapes", "shape inference"),
         ("agileir.export.onnx_export", "align_constant_ranks", "rank alignment"),
         ("agileir.deploy.export", "_fp32_parity", "validate"),
         ("agileir.calibration.variants", "to_fp16", "fp16 convert"),
         ("agileir.calibration.variants", "check_variant", "validate"),
         ("agileir.export.onnx_export", "save_checked", "check + write")]


def eager_seconds(model, runs: int = 3) -> list[float]:
    import torch

    x = torch.rand(1, 3, 128, 128)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(runs):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return times


def _form_of(args, fallback: str) -> str:
    from agileir.export.forms import FORMS, form_of

    for a in args:
        if isinstance(a, str) and a in FORMS:
            return a
        if hasattr(a, "graph"):
            return form_of(a)
    return fallback


def _wrap_stages(stages: dict, current: dict) -> None:
    """Time each TIMED function (outermost call only), per the form being worked on."""
    import importlib

    depth = [0]

    def timed(fn, name):
        def wrapper(*args, **kwargs):
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    form = _form_of(args, current["form"]) if name != "trace" else current["form"]
                    precision = " fp16" if name in ("fp16 convert",) or current.get("fp16") else ""
                    stages[f"{form}{precision}"][name] += time.perf_counter() - t
        return wrapper

    for module, attr, name in TIMED:
        mod = importlib.import_module(module)
        if hasattr(mod, attr):
            setattr(mod, attr, timed(getattr(mod, attr), name))
    onnx_export = importlib.import_module("agileir.export.onnx_export")
    original = onnx_export.export_onnx

    def export_onnx(model, form="standard", *args, **kwargs):
        current["form"] = form
        return original(model, form, *args, **kwargs)
    onnx_export.export_onnx = export_onnx
    variants = importlib.import_module("agileir.calibration.variants")
    original_check = variants.check_variant

    def check_variant(proto, reference, lr, precision):
        current["fp16"] = precision == "fp16"
        try:
            return original_check(proto, reference, lr, precision)
        finally:
            current["fp16"] = False
    variants.check_variant = check_variant


def child(forms: list[str]) -> dict:
    import inspect

    import torch

    from agileir.calibration.writer import VariantOptions
    from agileir.deploy import export as deploy
    from agileir.runtime.pytorch import load_checked_model

    torch.set_num_threads(os.cpu_count() or 1)
    load = [round(x, 2) for x in os.getloadavg()]
    loaded = load_checked_model(None)
    eager_before = eager_seconds(loaded.model)
    stages: dict = defaultdict(lambda: defaultdict(float))
    lines: list[tuple[float, str]] = []
    params = inspect.signature(deploy.export_checkpoint).parameters
    kwargs: dict = {}
    if "progress" in params:
        from agileir.io.progress import Progress

        def collect(event):
            if event.kind == "end":
                stages[event.label or "all"][event.stage] += event.elapsed_s
        kwargs["progress"] = Progress(lambda line: lines.append((time.perf_counter(), line)), collect)
    else:
        _wrap_stages(stages, {"form": "standard"})
        kwargs["echo"] = lambda line: lines.append((time.perf_counter(), line))
    with tempfile.TemporaryDirectory() as tmp:
        request = deploy.ExportRequest(out_dir=Path(tmp) / "out", forms=tuple(forms),
                                       variants=VariantOptions(fp16=True))
        args = [request]
        if "gate" in params:
            args.append(deploy.claim_export(request))
        start = time.perf_counter()
        result = deploy.export_checkpoint(*args, **kwargs)
        total = time.perf_counter() - start
    eager_after = eager_seconds(loaded.model)
    eager = (statistics.median(eager_before) + statistics.median(eager_after)) / 2
    stamps = [start] + [t for t, _ in lines] + [start + total]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_before": load,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "torch_threads": torch.get_num_threads(),
            "forms": forms, "eager_forward_128_s": {"before": [round(t, 3) for t in eager_before],
                                                    "after": [round(t, 3) for t in eager_after], "used": round(eager, 3)},
            "export_s": round(total, 1), "ratio": round(total / eager, 1),
            "stages_s": {k: {s: round(v, 1) for s, v in d.items()} for k, d in stages.items()},
            "longest_output_gap_s": round(max(gaps), 1), "output_lines": len(lines),
            "failed": list(result.failed),
            "node_counts": {f: e["node_counts"]["total"] for f, e in result.info["forms"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose agileir is measured")
    parser.add_argument("--forms", default="standard,plugin")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    forms = args.forms.split(",")
    if args.child:
        print("RESULT " + json.dumps(child(forms)), flush=True)
        return
    env = dict(os.environ, PYTHONPATH=str(args.code.resolve()))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--forms", args.forms]
    proc = subprocess.run(command, env=env, cwd=args.code, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    entry = json.loads(lines[-1][len("RESULT "):])
    entry["code"] = subprocess.run(["git", "-C", str(args.code), "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True).stdout.strip()
    entry["command"] = f"nice python bench/export_speed.py --label {args.label}" + (
        f" --code {args.code}" if args.code.resolve() != REPO else "")
    data = json.loads(args.out.read_text()) if args.out.is_file() else {}
    data.setdefault("machine", {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "python": platform.python_version()})
    data.setdefault("runs", {})[args.label] = entry
    data["runs"] = dict(sorted(data["runs"].items(), key=lambda kv: kv[0] != "before"))  # before, then the rest
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
