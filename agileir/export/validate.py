"""Parity of an exported graph with the PyTorch model it came from."""
from __future__ import annotations

import math

import numpy as np
import torch


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def parity(session, model: torch.nn.Module, lr: np.ndarray) -> dict:
    """PSNR (0..1 range, all channels, no crop) and max abs error of ONNX vs PyTorch on one input."""
    batch = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(batch)).numpy()
    name = session.get_inputs()[0].name
    out = session.run(None, {name: batch.astype(_input_dtype(session))})[0].astype(np.float32)
    if out.shape != ref.shape:
        raise ValueError(f"ONNX output shape {out.shape} differs from PyTorch {ref.shape}")
    return {"input_hw": list(lr.shape[:2]), "psnr_db": psnr(np.clip(out, 0, 1), np.clip(ref, 0, 1)),
            "max_abs_err": float(np.abs(out - ref).max())}


def _input_dtype(session):
    return np.float16 if "float16" in session.get_inputs()[0].type else np.float32
