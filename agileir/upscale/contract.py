"""The contract of every upscaler (a Runner of any backend, a PyTorch model wrapped by `torch_upscaler`):
(B, C, h, w) in -> (B, C, h*scale, w*scale) out, every value finite.

Checked here, in one place, on every backend call, so no command (infer, eval, validate, bench, calibrate)
can score, time or write the output of a broken model (NaN weights, an FP16 overflow, an ONNX whose
metadata claims a scale its graph does not apply) and exit 0.
"""
from __future__ import annotations

import numpy as np


class BadModelOutput(ValueError):
    """The model's output breaks the upscaler contract (wrong shape, NaN or infinite values)."""


def check_upscaled(batch: np.ndarray, out: np.ndarray, scale: int, what: str = "the model") -> np.ndarray:
    b, c, h, w = batch.shape
    expected = (b, c, h * scale, w * scale)
    if tuple(out.shape) != expected:
        raise BadModelOutput(f"{what} claims scale x{scale} but maps {b}x{c}x{h}x{w} to "
                             f"{'x'.join(map(str, out.shape))} (expected {'x'.join(map(str, expected))})")
    if not np.isfinite(out).all():
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise BadModelOutput(f"{what} produced {bad} NaN or infinite output values (broken weights or an "
                             "overflow); nothing was written")
    return out
