"""NNCF INT8, an executed peer row of `agileir calibrate` (registered in peers.REGISTRY as `nncf-int8`).

Intel's post-training quantizer on the same FP32 ONNX graph with the same calibration images: nncf.quantize
with its ONNX backend (the result is an ONNX Q/DQ graph, so the report evaluates it like every other row, and
OpenVINO or ONNX Runtime run it), preset PERFORMANCE (symmetric int8 activations and weights, weights per
channel), model type TRANSFORMER (NNCF's recipe for attention models: SmoothQuant, and it leaves Softmax,
LayerNorm and the attention score products it does not support in float), target device CPU, every calibration
image used (subset_size), fast bias correction on. Everything else is NNCF's choice.

Needs nncf (the `nncf` extra) and onnxruntime, which NNCF's ONNX backend runs to collect statistics.
"""
from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import onnx

from ..runtime.parity import as_batch

NAME = "nncf-int8"
TOOL = "nncf.quantize (ONNX backend)"


def import_nncf():
    try:
        import nncf
    except ImportError:
        raise ModuleNotFoundError("nncf is not installed (pip install 'agileir[nncf]')", name="nncf") from None
    return nncf


def nncf_int8(fp32: onnx.ModelProto, images: list[np.ndarray]) -> tuple[onnx.ModelProto, str, dict]:
    """(INT8 Q/DQ graph with `fp32`'s metadata, tool with version, settings) for the HxWx3 float images."""
    nncf = import_nncf()
    input_name = fp32.graph.input[0].name
    batches = [as_batch(im) for im in images]
    dataset = nncf.Dataset(batches, lambda batch: {input_name: batch})
    settings = {"backend": "onnx", "preset": "PERFORMANCE", "model_type": "TRANSFORMER", "target_device": "CPU",
                "subset_size": len(batches), "fast_bias_correction": True}
    with _quiet():
        graph = nncf.quantize(fp32, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                              model_type=nncf.ModelType.TRANSFORMER, target_device=nncf.TargetDevice.CPU,
                              subset_size=len(batches), fast_bias_correction=True)
    del graph.metadata_props[:]
    graph.metadata_props.extend(fp32.metadata_props)  # scale, window, form: a runnable agileir graph
    return graph, f"nncf {nncf.__version__} {TOOL}", settings


@contextlib.contextmanager
def _quiet():
    """NNCF draws progress bars (rich) and logs its steps; the report prints one line per peer instead."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
