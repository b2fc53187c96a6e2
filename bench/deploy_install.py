"""Deploy install without PyTorch vs with it: installed size and cold start of `agileir-infer` on an ONNX file.

    python bench/deploy_install.py --model out/agileir-x4/model.onnx \\
        --image ../shared/data/benchmarks/Set5/LR_bicubic/X4/babyx4.png -o bench/results/deploy_install.json

Each variant is a fresh virtual environment (created with the commands below unless it exists):
  onnx        python3 -m venv V && V/bin/pip install -e ".[onnx]"                       (no PyTorch)
  torch+onnx  python3 -m venv V && V/bin/pip install torch==2.13.0 && V/bin/pip install -e ".[torch,onnx]"
Installed size: `du -sk` of the environment's site-packages (the editable agileir itself is not in it).
Cold start: wall time of `agileir-infer MODEL IMAGE -o OUT` in a new process, `--runs` times, median (per
--model); and of `agileir --help` (interpreter + CLI import only). Where PyTorch is installed, onnxruntime-extensions
(the plugin form's custom op) imports it on its own, so the plugin form starts slower there.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "onnx": [["pip", "install", "-q", "-e", f"{REPO}[onnx]"]],
    "torch+onnx": [["pip", "install", "-q", "torch==2.13.0"], ["pip", "install", "-q", "-e", f"{REPO}[torch,onnx]"]],
}


def ensure_venv(venv: Path, variant: str) -> float | None:
    """Create the environment with the variant's pip commands when it does not exist; the seconds it took."""
    if (venv / "bin" / "agileir-infer").is_file():
        return None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for cmd in VARIANTS[variant]:
        subprocess.run([str(venv / "bin" / cmd[0]), *cmd[1:]], check=True)
    return round(time.perf_counter() - start, 1)


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit(f"error: no site-packages under {venv}")
    return found[0]


def size_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def wall_times(cmd: list[str], runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(round(time.perf_counter() - start, 2))
        if proc.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return times


def measure(venv: Path, variant: str, models: list[Path], image: Path, runs: int) -> dict:
    created_s = ensure_venv(venv, variant)
    sp = site_packages(venv)
    has_torch = (sp / "torch").is_dir()
    infer = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            out = Path(tmp) / f"{model.stem}.png"
            times = wall_times([str(venv / "bin" / "agileir-infer"), str(model), str(image), "-o", str(out)], runs)
            infer[model.name] = {"runs_s": times, "median_s": statistics.median(times)}
            out.unlink(missing_ok=True)
    help_times = wall_times([str(venv / "bin" / "agileir"), "--help"], runs)
    return {"variant": variant, "venv": str(venv), "torch_installed": has_torch,
            "install_commands": [" ".join(c) for c in VARIANTS[variant]], "created_s": created_s,
            "site_packages_mib": size_mib(sp), "torch_mib": size_mib(sp / "torch") if has_torch else 0.0,
            "agileir_infer": infer, "help_s": help_times, "help_median_s": statistics.median(help_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, action="append",
                        help="an .onnx file (e.g. agileir-export's model.onnx); repeat for more")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--venv", action="append", metavar="VARIANT=PATH",
                        help=f"variant ({', '.join(VARIANTS)}) and its environment [default: /tmp/deploy-venv for "
                             "onnx, /tmp/deploy-venv-torch for torch+onnx]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "bench" / "results" / "deploy_install.json")
    args = parser.parse_args()
    pairs = [v.split("=", 1) for v in args.venv] if args.venv else \
        [["onnx", "/tmp/deploy-venv"], ["torch+onnx", "/tmp/deploy-venv-torch"]]
    load_at_start = os.getloadavg()
    rows = [measure(Path(path), variant, [m.resolve() for m in args.model], args.image.resolve(), args.runs)
            for variant, path in pairs]
    for r in rows:
        infer = ", ".join(f"{name} {v['median_s']:.2f} s {v['runs_s']}" for name, v in r["agileir_infer"].items())
        print(f"{r['variant']:<11} site-packages {r['site_packages_mib']:>7.1f} MiB (torch {r['torch_mib']:.1f}), "
              f"agileir-infer median: {infer}; --help {r['help_median_s']:.2f} s")
    payload = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                           "load_average_at_end": os.getloadavg()},
               "models": {str(m): round(m.stat().st_size / 2**20, 1) for m in args.model},
               "image": str(args.image), "runs": args.runs, "results": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
