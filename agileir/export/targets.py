"""The --compat export targets (agileir.export.compat) and the TensorRT ONNX parser each must satisfy (a key of
agileir.export.trt_compat.RELEASES). Import-light: the CLI reads it for its choices."""
from __future__ import annotations

# target -> parser table key; the TensorRT release each ships (JetPack 5.1.x: 8.5.2, JetPack 6.0: 8.6.2,
# JetPack 6.1/6.2: 10.3); trt10: the newest TensorRT 10 tabulated (Attention from 10.14); rtx: TensorRT-RTX 1.7;
# latest: no rewrite, checked against the newest table.
TARGETS = {"jetpack5": "8.5", "jetpack6.0": "8.6", "jetpack6": "10.3", "trt10": "10.15", "rtx": "rtx",
           "latest": "10.15"}
TARGET_TRT = {"jetpack5": "8.5.2", "jetpack6.0": "8.6.2", "jetpack6": "10.3", "trt10": "10.15", "rtx": None,
              "latest": None}
COMPAT_TARGETS = tuple(TARGETS)
DEFAULT_COMPAT = "latest"
