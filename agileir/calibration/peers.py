"""Executed baselines: other tools' INT8 post-training quantization of the same FP32 ONNX graph with the same
calibration images, for the report's rows beside the toolkit's calibrators.

ort-minmax / ort-entropy / ort-percentile
    onnxruntime.quantization.quantize_static, QDQ, symmetric int8, weights per output channel. To finish on
    the full AgileIR graph (6,140 nodes) it calibrates only what it quantizes: op_types_to_quantize =
    Conv + MatMul selects the tensors to calibrate (inputs and outputs of those ops; its default, every
    float tensor of every op, spends > 35 min in MinMaxCalibrater.augment_graph, which rebuilds the
    value-info map and rescans the node list for each tensor). Everything else is ORT's choice, including
    which MatMuls it quantizes (the attention products too, since both inputs are activations).
    Calibration streams: ORT's histogram calibrators keep every calibrated tensor of every image they are
    given before building histograms (GBs per image on the full model), so the images are handed over in
    strides of ORT_STRIDE (ORT's `CalibStridedMinMax`: one `collect_data` per stride, histograms and
    ranges merged between strides).
modelopt-int8
    NVIDIA ModelOpt ONNX PTQ (modelopt.onnx.quantization.quantize, int8, max calibration, high-precision
    dtype fp32, CPU execution provider). Imported when `modelopt` imports in this environment; otherwise
    run in the interpreter named by AGILEIR_MODELOPT_PYTHON (its [onnx] extra pins onnxruntime-gpu and
    cupy, which conflict with the CPU onnxruntime here, so it usually lives in its own environment). If
    neither is there the row is skipped with that reason.
nncf-int8
    Intel NNCF post-training quantization (ONNX backend, PERFORMANCE preset, TRANSFORMER model type):
    calibration.nncf_peer. Skipped with the reason where nncf is not installed (the `nncf` extra).

Memory: before a peer starts, what its calibration holds is estimated from the graph's activation sizes
(calibration.memory) and checked against the memory budget (agileir.upscale.memory's policy); a peer over
it is a skipped row with the estimate and the budget, not an out-of-memory kill.

A peer is one entry of REGISTRY: its tool, its quantize function and its memory estimate.
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
from typing import Callable

import numpy as np
import onnx

from ..runtime.parity import as_batch
from . import PEERS
from .memory import PassEstimate, budget_or_default, pass_estimate

ORT_METHODS = {"ort-minmax": "MinMax", "ort-entropy": "Entropy", "ort-percentile": "Percentile"}
ORT_OP_TYPES = ["Conv", "MatMul"]
ORT_STRIDE = 1  # calibration images per ORT collect_data call
MODELOPT_PYTHON = "AGILEIR_MODELOPT_PYTHON"
MODELOPT_TOOL = "nvidia-modelopt modelopt.onnx.quantization"


@dataclass
class PeerResult:
    name: str
    tool: str
    graph: onnx.ModelProto | None = None
    skipped: str | None = None  # the reason, when there is no graph
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)  # the estimate checked against the budget before it ran


@dataclass(frozen=True)
class Peer:
    tool: str
    quantize: Callable[[onnx.ModelProto, list[np.ndarray]], PeerResult]
    # what its calibration would hold (None: not estimated, the peer runs)
    estimate: Callable[[onnx.ModelProto, list[np.ndarray]], PassEstimate | None] = lambda fp32, images: None


def run_peer(name: str, fp32: onnx.ModelProto, images: list[np.ndarray], budget: int | None = None) -> PeerResult:
    """Quantize `fp32` with peer `name`; over the memory budget (bytes; None: agileir.upscale.memory's
    default) or any failure, the result is skipped with its reason."""
    if name not in REGISTRY:
        raise ValueError(f"unknown peer {name!r} (choose from {', '.join(PEERS)})")
    peer, t0 = REGISTRY[name], time.perf_counter()
    memory: dict = {}
    try:
        try:
            estimate = peer.estimate(fp32, images)
        except Exception as e:  # no estimate is no reason to skip: every peer streams its calibration
            estimate, memory = None, {"estimate_error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        if estimate is not None:
            limit = budget_or_default(budget)
            memory = estimate.record() | {"budget_bytes": limit}
        if estimate is not None and not estimate.fits(limit):
            result = PeerResult(name, peer.tool, skipped=estimate.over_budget(limit))
        else:
            result = peer.quantize(fp32, images)
    except Exception as e:  # a peer's failure is a row of the report, not the report's failure
        result = PeerResult(name, peer.tool, skipped=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
    result.name, result.seconds, result.memory = name, round(time.perf_counter() - t0, 1), memory
    return result


class StridedReader:
    """ORT CalibrationDataReader over the calibration images: `set_range` (called by quantize_static with
    CalibStridedMinMax) limits what one collect_data call gets; `strides` records every range handed out."""

    def __init__(self, input_name: str, images: list[np.ndarray]):
        self.input_name, self.images = input_name, images
        self.next, self.end = 0, len(images)
        self.strides: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, min(end_index, len(self.images))
        self.strides.append((self.next, self.end))

    def get_next(self) -> dict | None:
        if self.next >= self.end:
            return None
        self.next += 1
        return {self.input_name: as_batch(self.images[self.next - 1])}


def ort_calibrated_tensors(fp32: onnx.ModelProto) -> set[str]:
    """The tensors ORT's calibrators collect with op_types_to_calibrate = ORT_OP_TYPES: float inputs and
    outputs of those nodes that are not initializers (CalibraterBase.select_tensors_to_calibrate)."""
    constants = {i.name for i in fp32.graph.initializer}
    return {t for n in fp32.graph.node if n.op_type in ORT_OP_TYPES for t in (*n.input, *n.output)
            if t and t not in constants}


def _ort_estimate(method: str) -> Callable[[onnx.ModelProto, list[np.ndarray]], PassEstimate]:
    def estimate(fp32: onnx.ModelProto, images: list[np.ndarray]) -> PassEstimate:
        # MinMax returns a ReduceMin/ReduceMax scalar per tensor, but ORT runs those after the graph: every
        # calibrated tensor of the image is alive at once, as with the histogram methods
        return pass_estimate(fp32, ort_calibrated_tensors(fp32), images, ORT_STRIDE)
    return estimate


def _ort_quantizer(method: str) -> Callable[[onnx.ModelProto, list[np.ndarray]], PeerResult]:
    return lambda fp32, images: ort_quantize_static(fp32, images, method)[0]


def ort_quantize_static(fp32: onnx.ModelProto, images: list[np.ndarray], method: str,
                        stride: int = ORT_STRIDE) -> tuple[PeerResult, StridedReader]:
    """ORT quantize_static with the images handed over `stride` at a time; the reader shows the strides."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(images) % stride:
        raise ValueError(f"ORT's strided calibration needs a multiple of {stride} images, got {len(images)}")
    reader = StridedReader(fp32.graph.input[0].name, images)
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "CalibTensorRangeSymmetric": True,
             "CalibStridedMinMax": stride}
    settings = {"quant_format": "QDQ", "per_channel": True, "activation_type": "QInt8", "weight_type": "QInt8",
                "calibrate_method": method, "op_types_to_quantize": ORT_OP_TYPES, "extra_options": extra}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(onnx.shape_inference.infer_shapes(fp32), src)  # the calibrator needs every tensor's type
        with _quiet():
            quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method),
                            op_types_to_quantize=list(ORT_OP_TYPES), extra_options=dict(extra))
        graph = onnx.load(dst)
    if len(reader.strides) != -(-len(images) // stride):
        raise RuntimeError(f"ONNX Runtime {onnxruntime.__version__} did not calibrate in strides "
                           f"({len(reader.strides)} ranges for {len(images)} images)")
    return PeerResult("", f"onnxruntime {onnxruntime.__version__} quantize_static", graph, settings=settings), reader


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
        return PeerResult("", MODELOPT_TOOL, skipped=(
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


def _modelopt_estimate(fp32: onnx.ModelProto, images: list[np.ndarray]) -> PassEstimate | None:
    """ModelOpt runs the stacked images as one batch (ORT's MinMax calibration of every image at once)."""
    if modelopt_interpreter() is None:
        return None  # skipped anyway, with that reason
    return pass_estimate(fp32, ort_calibrated_tensors(fp32), images, len(images), batch=len(images))


REGISTRY: dict[str, Peer] = {
    **{name: Peer("onnxruntime.quantization.quantize_static", _ort_quantizer(method), _ort_estimate(method))
       for name, method in ORT_METHODS.items()},
    "modelopt-int8": Peer(MODELOPT_TOOL, _modelopt_int8, _modelopt_estimate),
    # NNCF runs one sample at a time with its statistic points as extra outputs, reducing them as it goes
    "nncf-int8": Peer("nncf.quantize (ONNX backend)", lambda fp32, images: _nncf_int8(fp32, images),
                      _ort_estimate("Entropy")),
}


def _nncf_int8(fp32: onnx.ModelProto, images: list[np.ndarray]) -> PeerResult:
    from .nncf_peer import nncf_int8

    graph, tool, settings = nncf_int8(fp32, images)
    return PeerResult("", tool, graph, settings=settings)


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
