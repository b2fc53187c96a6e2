"""Output parity: how close one runner's output is to a reference's. The one place float outputs are compared
(export gate, FP16/INT8 variant checks, `agileir validate`, TensorRT engine tests).

Outputs are clipped to [0, 1] for the PSNR, as a saved image would be; the max abs error is of the raw values.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from ..quality.metrics import psnr

BatchFn = Callable[[np.ndarray], np.ndarray]  # a Runner (its upscale) or any (B,3,h,w) -> (B,3,hs,ws) callable


def as_batch(lr: np.ndarray) -> np.ndarray:
    """HxWx3 image -> (1, 3, H, W) float32; a (B, 3, H, W) batch passes unchanged."""
    lr = np.asarray(lr, np.float32)
    return np.ascontiguousarray(lr.transpose(2, 0, 1)[None] if lr.ndim == 3 else lr)


def float_parity(out: np.ndarray, ref: np.ndarray) -> dict:
    """{'psnr_db', 'max_abs_err', 'finite'} of `out` against `ref` (same shape, ValueError otherwise)."""
    out, ref = np.asarray(out, np.float32), np.asarray(ref, np.float32)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
    finite = bool(np.isfinite(out).all())
    return {"psnr_db": psnr(np.clip(out, 0, 1), np.clip(ref, 0, 1)) if finite else float("nan"),
            "max_abs_err": float(np.abs(out - ref).max()) if finite else float("inf"), "finite": finite}


def output_parity(candidate: BatchFn, reference: Union[BatchFn, np.ndarray], lr: np.ndarray,
                  min_psnr_db: float | None = None) -> dict:
    """Run `candidate` (and `reference`, unless it is already an output array) on `lr` and compare.
    With `min_psnr_db`, the result has 'passed': finite and PSNR >= the threshold."""
    batch = as_batch(lr)
    out = candidate(batch)
    ref = reference if isinstance(reference, np.ndarray) else reference(batch)
    result = {"input_hw": list(batch.shape[2:]), **float_parity(out, ref)}
    if min_psnr_db is not None:
        result["min_psnr_db"] = min_psnr_db
        result["passed"] = result["finite"] and result["psnr_db"] >= min_psnr_db
    return result
