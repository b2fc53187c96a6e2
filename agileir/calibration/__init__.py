"""Reduced-precision variants of the exported graphs (docs/calibration.md).

fp16        FP16 autocast (onnxconverter-common), FP32 I/O, sensitive ops and plugin parameters FP32
int8        explicit Q/DQ (onnxruntime.quantization) on the standard form, carried to the plugin form
qdq_rules   which layers are quantized; checker for TensorRT's explicit-quantization rules
calibrators activation ranges: max, entropy, percentile (ONNX Runtime's algorithms), mse
dataset     the bundled calibration set (training images only) or a folder of LR images
record      calibration.json
variants    build + validate the variant files
writer      write them beside the FP32 export (agileir-export --fp16/--int8)
graph       tensor readers / writers lookups the passes share
report      `agileir calibrate`'s report: evaluation of every row, beside published PTQ baselines
study       `agileir calibrate` as one call: export, calibrate, peers, bit widths, evaluate, write
peers       executed baselines: ONNX Runtime quantize_static, NVIDIA ModelOpt, NNCF (nncf_peer)
bits        equal-bit rows: the INT8 graph fake-quantized at W6A6 / W4A4 / weight-only
attention   INT8 on the attention matrix products too
fp16_study  which op types FP16 must keep in FP32, measured
"""

# Here rather than in calibrators.py so that the CLI lists them without importing onnx.
CALIBRATORS = ("entropy", "max", "percentile", "mse")
PEERS = ("ort-minmax", "ort-entropy", "ort-percentile", "modelopt-int8", "nncf-int8")  # peers.py: other tools' INT8
DEFAULT_CALIBRATOR = "entropy"
