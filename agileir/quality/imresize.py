"""MATLAB-equivalent bicubic ``imresize`` (with antialiasing when downscaling).

Implemented from the algorithm MATLAB's ``imresize`` uses:

* cubic convolution kernel with ``a = -0.5``;
* per axis, output length ``ceil(in_len * scale)``;
* output sample ``i`` (1-based) maps to input coordinate
  ``u = i / scale + 0.5 * (1 - 1 / scale)``;
* when downscaling with antialiasing the kernel is stretched,
  ``h(x) = scale * k(scale * x)``, and its support widens to ``4 / scale``;
* ``P = ceil(width) + 2`` taps starting at ``floor(u - width / 2)``, weights
  normalised to sum to one, out-of-range indices mirrored symmetrically
  (edge sample repeated), and tap columns that are zero for every output
  sample dropped;
* dimensions are processed in order of increasing scale factor (stable, so
  height first on ties).

``bicubic_degrade`` reproduces the SR benchmark protocol
(``imresize(modcrop(hr, s), 1/s, 'bicubic')`` on a uint8 image). For uint8
input MATLAB computes each axis pass in double precision but stores the pass
result as uint8 (round half away from zero, saturate), so the intermediate
image is quantised too; ``imresize_uint8`` does the same and matches the
stored Set5 LR images exactly.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # only imresize_torch uses PyTorch; scoring (upscale_bicubic) runs on deploy installs without it
    import torch

__all__ = [
    "cubic",
    "resize_weights",
    "resize_matrix",
    "imresize",
    "imresize_torch",
    "imresize_uint8",
    "modcrop",
    "matlab_uint8",
    "bicubic_degrade",
    "upscale_bicubic",
]

_KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray | float) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


def _output_length(in_len: int, scale: float) -> int:
    """``ceil(in_len * scale)``, tolerant to float noise such as 255 * (1/3)."""
    v = in_len * scale
    r = round(v)
    if abs(v - r) < 1e-9 * max(1.0, abs(v)):
        return int(r)
    return int(math.ceil(v))


@functools.lru_cache(maxsize=256)
def resize_weights(
    in_len: int, scale: float, out_len: int | None = None, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis contributions, as MATLAB's ``contributions()``.

    Returns ``(weights, indices)``, both of shape ``(out_len, taps)``; ``indices``
    are 0-based into the input axis. The arrays are cached and read-only.
    """
    in_len = int(in_len)
    scale = float(scale)
    if in_len < 1 or scale <= 0:
        raise ValueError(f"invalid in_len={in_len} / scale={scale}")
    if out_len is None:
        out_len = _output_length(in_len, scale)
    out_len = int(out_len)

    if scale < 1.0 and antialias:
        width = _KERNEL_WIDTH / scale

        def h(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)

    else:
        width = _KERNEL_WIDTH
        h = cubic

    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)

    # Symmetric padding: aux = [1..n, n..1], indexed modulo 2n.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, aux.size)]

    keep = np.any(w != 0, axis=0)
    w = np.ascontiguousarray(w[:, keep])
    idx0 = np.ascontiguousarray(idx0[:, keep])
    w.setflags(write=False)
    idx0.setflags(write=False)
    return w, idx0


@functools.lru_cache(maxsize=256)
def resize_matrix(
    in_len: int, scale: float, out_len: int | None = None, antialias: bool = True
) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 matrix equivalent to ``resize_weights``."""
    w, idx = resize_weights(in_len, scale, out_len, antialias)
    m = np.zeros((w.shape[0], int(in_len)), dtype=np.float64)
    rows = np.repeat(np.arange(w.shape[0]), w.shape[1])
    np.add.at(m, (rows, idx.ravel()), w.ravel())
    m.setflags(write=False)
    return m


def _resolve(
    shape: Sequence[int],
    scale: float | Sequence[float] | None,
    output_shape: Sequence[int] | None,
) -> tuple[list[float], list[int]]:
    """Per-dimension scales and output lengths for the first two dims."""
    in_hw = [int(shape[0]), int(shape[1])]
    if output_shape is not None:
        out_hw = [int(output_shape[0]), int(output_shape[1])]
        if scale is None:
            scales = [out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]]
        else:
            scales = _as_pair(scale)
    elif scale is not None:
        scales = _as_pair(scale)
        out_hw = [_output_length(n, s) for n, s in zip(in_hw, scales)]
    else:
        raise ValueError("either scale or output_shape must be given")
    if min(out_hw) < 1 or min(scales) <= 0:
        raise ValueError(f"invalid output shape {out_hw} / scale {scales}")
    return scales, out_hw


def _as_pair(scale: float | Sequence[float]) -> list[float]:
    if np.isscalar(scale):
        return [float(scale), float(scale)]
    s = [float(v) for v in scale]  # type: ignore[union-attr]
    if len(s) != 2:
        raise ValueError("scale must be a scalar or a pair")
    return s


def _dim_order(scales: Sequence[float]) -> list[int]:
    # Stable sort by scale: smaller scale first, height first on ties.
    return sorted(range(2), key=lambda d: scales[d])


def imresize(
    img: np.ndarray,
    scale: float | Sequence[float] | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on an HxW or HxWxC array.

    Computes in float64 and returns float64 (no clipping or rounding).
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC array, got shape {a.shape}")
    scales, out_hw = _resolve(a.shape, scale, output_shape)
    return _resize_passes(a, scales, out_hw, antialias, quantize=False)


def _resize_passes(
    a: np.ndarray,
    scales: Sequence[float],
    out_hw: Sequence[int],
    antialias: bool,
    quantize: bool,
) -> np.ndarray:
    """Separable resize, one axis per pass; optionally uint8-quantise each pass."""
    for d in _dim_order(scales):
        w, idx = resize_weights(a.shape[d], scales[d], out_hw[d], antialias)
        a = np.moveaxis(a, d, 0)
        out = np.zeros((w.shape[0],) + a.shape[1:], dtype=np.float64)
        bshape = (w.shape[0],) + (1,) * (a.ndim - 1)
        for j in range(w.shape[1]):
            out += w[:, j].reshape(bshape) * a[idx[:, j]]
        if quantize:
            out = matlab_uint8(out).astype(np.float64)
        a = np.moveaxis(out, 0, d)
    return np.ascontiguousarray(a)


def imresize_uint8(
    img: np.ndarray,
    scale: float | Sequence[float] | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize`` applied to a uint8 image, returning uint8.

    MATLAB keeps the uint8 class between the per-axis passes, so the result
    is rounded (half away from zero) and saturated after *each* pass, not only
    at the end. Reproducing that is what makes the output bit-exact with
    MATLAB-generated benchmark LR images.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC array, got shape {a.shape}")
    scales, out_hw = _resolve(a.shape, scale, output_shape)
    out = _resize_passes(a.astype(np.float64), scales, out_hw, antialias, quantize=True)
    return out.astype(np.uint8)


def imresize_torch(
    x: torch.Tensor,
    scale: float | Sequence[float] | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Torch version of :func:`imresize` for (C,H,W) or (B,C,H,W) float tensors.

    Applies the cached dense per-axis matrices as ``M_h @ x @ M_w^T`` in the
    tensor's dtype and device.
    """
    import torch

    if x.dim() not in (3, 4):
        raise ValueError(f"expected (C,H,W) or (B,C,H,W) tensor, got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise TypeError("imresize_torch expects a floating point tensor")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    scales, out_hw = _resolve((h, w), scale, output_shape)
    y = x
    for d in _dim_order(scales):
        m = torch.from_numpy(
            np.array(resize_matrix((h, w)[d], scales[d], out_hw[d], antialias))
        ).to(dtype=x.dtype, device=x.device)
        if d == 0:
            y = torch.matmul(m, y)  # (out_h, H) @ (..., H, W)
        else:
            y = torch.matmul(y, m.t())  # (..., H, W) @ (W, out_w)
    return y


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of ``scale`` (keeps the top-left)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def matlab_uint8(a: np.ndarray) -> np.ndarray:
    """MATLAB double->uint8 cast: round half away from zero, saturate."""
    a = np.asarray(a, dtype=np.float64)
    r = np.sign(a) * np.floor(np.abs(a) + 0.5)
    return np.clip(r, 0, 255).astype(np.uint8)


def bicubic_degrade(hr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Benchmark LR generation: ``imresize(modcrop(hr, s), 1/s, 'bicubic')`` -> uint8."""
    scale = int(scale)
    hr = modcrop(np.asarray(hr_uint8), scale)
    h, w = hr.shape[:2]
    return imresize_uint8(hr, 1.0 / scale, output_shape=(h // scale, w // scale))


def upscale_bicubic(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic baseline: ``imresize(lr, s, 'bicubic')`` on a uint8 image -> uint8."""
    scale = int(scale)
    lr = np.asarray(lr_uint8)
    h, w = lr.shape[:2]
    return imresize_uint8(lr, float(scale), output_shape=(h * scale, w * scale))
