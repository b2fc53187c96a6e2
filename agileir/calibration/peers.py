"""Executed baselines: other tools' INT8 post-training quantization of the same FP32 ONNX graph with the same
calibration images, for the report's rows beside the toolkit's calibrators.

ort-minmax / ort-entropy / ort-percentile
    onnxruntime.quantization.quantize_static, QDQ, symmetric int8, weights per output channel. To finish on
    the full AgileIR graph (6,140 nodes) it calibrates only what it quantizes: op_types_to_quantize =
    Conv + MatMul selects the tensors to calibrate (inputs and outputs of those ops; its default, every
    float tensor of every op, spends > 35 min in MinMaxCalibrater.augment_graph, which rebuilds the
    value-info map and rescans the node list for each tensor). Everything else is ORT's choice, including
    which MatMuls it quantizes (the attention products too, since both inputs are activations).
modelopt-int8
    NVIDIA ModelOpt ONNX PTQ (modelopt.onnx.quantization.quantize, int8, max calibration, high-precision
    dtype fp32, CPU execution provider). Imported when `modelopt` imports in this environment; otherwise
    run in the interpreter named by AGILEIR_MODELOPT_PYTHON (its [onnx] extra pins onnxruntime-gpu and
    cupy, which conflict with the CPU onnxruntime here, so it usually lives in its own environment). If
    neither is there the row is skipped with that reason.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..runtime.parity import as_batch
from . import PEERS

ORT_METHODS = {"ort-minmax": "MinMax", "ort-entropy": "Entropy", "ort-percentile": "Percentile"}
MODELOPT_PYTHON = "AGILEIR_MODELOPT_PYTHON"


@dataclass
class PeerResult:
    name: str
    tool: str
    graph: onnx.ModelProto | None = None
    skipped: str | None = None  # the reason, when there is no graph
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


def run_peer(name: str, fp32: onnx.ModelProto, images: list[np.ndarray]) -> PeerResult:
    """Quantize `fp32` with peer `name`; any failure becomes a skipped result with its reason."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r} (choose from {', '.join(PEERS)})")
    t0 = time.perf_counter()
    try:
        if name in ORT_METHODS:
            result = _ort_quantize_static(fp32, images, ORT_METHODS[name])
        else:
            result = _modelopt_int8(fp32, images)
    except Exception as e:  # a peer's failure is a row of the report, not the report's failure
        result = PeerResult(name, _TOOLS[name], skipped=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
    result.name, result.seconds = name, round(time.perf_counter() - t0, 1)
    return result


def _ort_quantize_static(fp32: onnx.ModelProto, images: list[np.ndarray], method: str) -> PeerResult:
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    batches = [as_batch(im) for im in images]
    input_name = fp32.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = iter(batches)

        def get_next(self):
            batch = next(self.left, None)
            return None if batch is None else {input_name: batch}

    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibTensorRangeSymmetric": True}
    settings = {"quant_format": "QDQ", "per_channel": True, "activation_type": "QInt8", "weight_type": "QInt8",
                "calibrate_method": method, "op_types_to_quantize": ["Conv", "MatMul"], "extra_options": extra}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(onnx.shape_inference.infer_shapes(fp32), src)  # the calibrator needs every tensor's type
        with _quiet():
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method),
                            op_types_to_quantize=["Conv", "MatMul"], extra_options=dict(extra))
        graph = onnx.load(dst)
    return PeerResult("", f"onnxruntime {onnxruntime.__version__} quantize_static", graph, settings=settings)


_TOOLS = {**{k: "onnxruntime.quantization.quantize_static" for k in ORT_METHODS},
          "modelopt-int8": "nvidia-modelopt modelopt.onnx.quantization"}

# Runs in the ModelOpt environment: argv = input onnx, calibration .npy, output onnx.
_MODELOPT_SCRIPT = """
import json, sys
import numpy as np
import modelopt
from modelopt.onnx.quantization import quantize
src, calib, dst = sys.argv[1:4]
quantize(onnx_path=src, quantize_mode="int8", calibration_data=np.load(calib), calibration_method="max",
         output_path=dst, high_precision_dtype="fp32", calibration_eps=["cpu"])
print(json.dumps({"modelopt": modelopt.__version__}))
"""


def modelopt_interpreter() -> str | None:
    """The Python that runs ModelOpt: this one if it imports modelopt, else $AGILEIR_MODELOPT_PYTHON."""
    if importlib.util.find_spec("modelopt") is not None:
        return sys.executable
    return os.environ.get(MODELOPT_PYTHON) or None


def _modelopt_int8(fp32: onnx.ModelProto, images: list[np.ndarray]) -> PeerResult:
    python = modelopt_interpreter()
    if python is None:
        return PeerResult("", _TOOLS["modelopt-int8"], skipped=(
            "nvidia-modelopt is not installed here: install the `modelopt` extra in its own environment "
            f"(it pins onnxruntime-gpu and cupy) and set {MODELOPT_PYTHON} to that environment's python"))
    if len({im.shape for im in images}) != 1:
        raise ValueError("ModelOpt calibrates on one (N, 3, H, W) array: the calibration images must share a size")
    settings = {"quantize_mode": "int8", "calibration_method": "max", "high_precision_dtype": "fp32",
                "calibration_eps": ["cpu"]}
    with tempfile.TemporaryDirectory() as tmp:
        src, calib, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "calib.npy", Path(tmp) / "int8.onnx"
        onnx.save(fp32, src)
        np.save(calib, np.concatenate([as_batch(im) for im in images]))
        done = subprocess.run([python, "-c", _MODELOPT_SCRIPT, str(src), str(calib), str(dst)],
                              capture_output=True, text=True, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""})
        if done.returncode != 0 or not dst.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"ModelOpt exited with {done.returncode}: {tail[0][:300]}")
        version = json.loads(done.stdout.strip().splitlines()[-1])["modelopt"]
        graph = onnx.load(dst)
    return PeerResult("", f"nvidia-modelopt {version} (python {python})", graph, settings=settings)


@contextlib.contextmanager
def _quiet():
    """ORT's calibrators print progress and log a pre-processing hint as a warning."""
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.getLogger().setLevel(level)
