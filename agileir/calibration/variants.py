"""FP16 and INT8 variants of the exported forms: build, calibrate, validate in ONNX Runtime CPU."""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from ..export.forms import FORMS, onnx_name
from ..runtime.parity import output_parity
from .calibrators import DEFAULT_CALIBRATOR, SETTINGS, activation_ranges
from .dataset import CalibrationImage
from .fp16 import DEFAULT_BLOCK_OPS, to_fp16
from .int8 import quantize_standard, transplant_qdq
from .qdq_rules import activation_inputs, qdq_summary, qdq_violations
from .record import Calibration, graph_sha256, library_versions

FILES = {(precision, form): onnx_name(form, precision) for precision in ("fp16", "int8") for form in FORMS}
CALIBRATION_FILE = "calibration.json"
# Pass marks of the ORT check against the FP32 graph's output: they catch a broken graph, not a small loss.
MIN_PSNR_DB = {"fp16": 50.0, "int8": 30.0}


def readers_of(standard: onnx.ModelProto) -> dict[str, list[str]]:
    """Activation tensor -> the quantized nodes that read it."""
    readers: dict[str, list[str]] = {}
    for node, tensor in activation_inputs(standard).items():
        readers.setdefault(tensor, []).append(node)
    return readers


def calibrate(standard: onnx.ModelProto, images: list[CalibrationImage], calibrator: str = DEFAULT_CALIBRATOR,
              model_info: dict | None = None, progress: Callable[[int], None] | None = None) -> Calibration:
    readers = readers_of(standard)
    ranges = activation_ranges(standard, sorted(readers), [im.rgb for im in images], calibrator, progress)
    model = dict(model_info or {}) | {"standard_graph_sha256": graph_sha256(standard)}
    return Calibration(calibrator, SETTINGS[calibrator], ranges, readers, [im.record() for im in images],
                       model, library_versions())


def int8_forms(forms: dict[str, onnx.ModelProto], calibration: Calibration) -> dict[str, onnx.ModelProto]:
    """INT8 graphs for the given forms; `forms` must hold the standard form. Ranges are matched by node
    name, so a calibration made on one export (say, dynamic shapes) fits another (static shapes)."""
    ranges = calibration.ranges_for(activation_inputs(forms["standard"]))
    quantized = quantize_standard(forms["standard"], ranges)
    out = {"standard": quantized}
    for form in forms:
        if form != "standard":
            out[form] = transplant_qdq(quantized, forms[form])
    return out


def fp16_forms(forms: dict[str, onnx.ModelProto], block_ops=DEFAULT_BLOCK_OPS) -> dict[str, onnx.ModelProto]:
    return {form: to_fp16(proto, tuple(block_ops)) for form, proto in forms.items()}


def batch_runner(proto: onnx.ModelProto, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """(B, 3, h, w) float32 -> (B, 3, h*s, w*s) float32 with ONNX Runtime CPU, for any precision."""
    from ..runtime.ort import create_session

    session = create_session(proto, ["CPUExecutionProvider"], threads)
    inp = session.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {inp.name: batch.astype(dtype)})[0], np.float32)

    return run


def check_variant(proto: onnx.ModelProto, reference: np.ndarray, lr: np.ndarray, precision: str) -> dict:
    """Parity of a variant with the FP32 graph's output on `lr`, judged by MIN_PSNR_DB[precision]."""
    check = output_parity(batch_runner(proto), reference, lr, MIN_PSNR_DB[precision])
    return {"against": "fp32 graph output (ONNX Runtime CPU)", **check}


def describe_int8(proto: onnx.ModelProto) -> dict:
    problems = qdq_violations(proto)
    return {**qdq_summary(proto), "qdq_rules": "ok" if not problems else problems[:20]}
