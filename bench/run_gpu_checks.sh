#!/usr/bin/env bash
# The GPU checks of the plugin kernel, in one command, on any machine with an NVIDIA GPU, torch (CUDA)
# and cuda-bindings (the lent H100/H200 image has both):  bash bench/run_gpu_checks.sh
# Results go to $OUT (the device tool's folder) or bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-bench/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu_info.txt"
python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_plugin_kernel.py 2>&1 | tee "$out/gpu_tests.log"
python3 bench/gswa_kernel.py --out "$out/gswa_kernel.json"

# The PyTorch runner on CUDA vs on the CPU (agileir-infer/eval/validate/bench --device): output parity (PSNR,
# max abs error of the float outputs; pass at >= 60 dB, the FP32 validation threshold) and latency, bundled
# model, sample images. A CUDA device that is not there must exit 3 (checked last, with an index past the count).
python3 - "$out/pytorch_device.json" <<'PY'
import json, statistics, subprocess, sys, time
import numpy as np, torch
from agileir.io.samples import sample_image
from agileir.quality.metrics import psnr
from agileir.runtime import RunnerSpec, load_runner

def timed(runner, batch, runs=5):
    runner.upscale(batch)  # warm-up (CUDA context, cuDNN autotuning)
    times = []
    for _ in range(runs):
        start = time.perf_counter(); out = runner.upscale(batch)
        if torch.cuda.is_available(): torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)

rows = []
cpu, cuda = (load_runner(RunnerSpec(None, device=d)) for d in ("cpu", "cuda"))
for side in (64, 128, 256):
    batch = sample_image(side, side, seed=side).transpose(2, 0, 1)[None].astype(np.float32)
    ref, cpu_s = timed(cpu, batch, runs=2)
    out, cuda_s = timed(cuda, batch)
    rows.append({"lr": f"{side}x{side}", "psnr_db": psnr(out, ref), "max_abs_err": float(np.abs(out - ref).max()),
                 "cpu_median_s": cpu_s, "cuda_median_s": cuda_s, "speedup": cpu_s / cuda_s})
    print(rows[-1])
missing = f"cuda:{torch.cuda.device_count()}"
proc = subprocess.run([sys.executable, "-m", "agileir", "bench", "--device", missing, "--sizes", "16", "--runs", "1",
                       "agileir/weights/agileir_light_x4.safetensors"], capture_output=True, text=True)
result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "model": "bundled agileir_light_x4",
          "threshold_db": 60.0, "passed": all(r["psnr_db"] >= 60.0 for r in rows), "results": rows,
          "missing_device": {"device": missing, "exit_code": proc.returncode, "stderr": proc.stderr.strip()}}
json.dump(result, open(sys.argv[1], "w"), indent=2)
print("pytorch cuda vs cpu:", "PASS" if result["passed"] else "FAIL", "| missing device exit", proc.returncode)
PY
