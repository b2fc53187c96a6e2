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
