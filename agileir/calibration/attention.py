"""INT8 on the attention matrix products of the standard form: q.k^T and attn.v (GSWA decomposed into ONNX
ops, `qdq_rules.GSWA_SCOPE`), both inputs per-tensor symmetric int8, so attn.v reads a quantized Softmax
output. The default INT8 variant leaves them in float; this is the report's measured alternative.

Measured here in ONNX Runtime CPU only; whether TensorRT runs these products in INT8 is not verified (no
GPU). qdq_rules.qdq_violations describes the default variant and reports these Q/DQ as breaches."""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from .qdq_rules import attention_products


def attention_int8(standard: onnx.ModelProto, calibration, images: list[np.ndarray],
                   progress: Callable[[int], None] | None = None) -> onnx.ModelProto:
    """The INT8 graph of `calibration` plus Q/DQ on the attention products, whose input ranges are
    calibrated here with the same calibrator and images."""
    from .calibrators import activation_ranges
    from .int8 import quantize_standard
    from .qdq_rules import activation_inputs

    tensors = sorted({i for n in attention_products(standard) for i in n.input[:2]})
    if not tensors:
        raise ValueError("the graph has no attention matrix products (plugin form, or not a GSWA model)")
    extra = activation_ranges(standard, tensors, images, calibration.calibrator, progress)
    ranges = calibration.ranges_for(activation_inputs(standard)) | extra
    return quantize_standard(standard, ranges, attention=True)

