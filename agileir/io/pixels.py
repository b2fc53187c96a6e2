"""What a pixel array may be: the one decoder (array -> float colour on [0, 1] + alpha) and encoder (back to the
source's layout and dtype), used by image files (agileir.io.images), video frames and the Python API.

Accepted (anything else is a ValueError naming the input and what was expected):

| dtype | values | decoded as |
|---|---|---|
| uint8 | 0..255 | / 255 |
| uint16 (either byte order) | 0..65535 | / 65535 (16-bit PNGs; returned as uint16) |
| float16 / float32 / float64 | [0, 1] | as is; outside [0, 1] refused naming the range found (no silent clip) |

| shape | meaning | output |
|---|---|---|
| HxW, HxWx1 | gray | colour repeated to RGB for the model; the model's RGB reduced back by the channel mean |
| HxWx2 | gray + alpha | as HxWx1, alpha separate |
| HxWx3 | RGB | as is |
| HxWx4 | RGBA | colour through the model; alpha resized separately (bicubic, clipped to [0, 1]) |

Refused, naming the input: an empty array (a zero dimension), NaN or infinite values, other dtypes (bool,
signed or wider integers, whose scale is ambiguous; complex; object), other ranks or channel counts.

Alpha: Real-ESRGAN's `RealESRGANer` resizes alpha with cv2 (INTER_LINEAR) or runs it through the model as gray;
agileir resizes it bicubically (`upscale_alpha`), for files and arrays alike: a model trained on colour is not
asked about transparency, and the edge of an alpha matte stays where the colour is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOAT_RANGE = (0.0, 1.0)
_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass
class Pixels:
    """A decoded array: `colour` float32 HxWx1 or HxWx3 on [0, 1], `alpha` float32 HxW or None, and what is
    needed to give the result the source's form (`dtype`, `ndim`)."""
    colour: np.ndarray
    alpha: np.ndarray | None
    dtype: np.dtype
    ndim: int

    @property
    def is_grayscale(self) -> bool:
        return self.colour.shape[2] == 1

    @property
    def bit_depth(self) -> int:
        return 16 if self.dtype == np.uint16 else 8

    def rgb(self) -> np.ndarray:
        """HxWx3, the layout SR models take (gray repeated)."""
        return np.repeat(self.colour, 3, axis=2) if self.is_grayscale else self.colour


def _values(array: np.ndarray, name: str) -> np.ndarray:
    """float32 on [0, 1], or ValueError naming `name`."""
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder not in ("=", "|") else array.dtype
    if dtype == np.uint8:  # float32 division: correctly rounded, the values every 8-bit path has always used
        return array.astype(np.float32) / np.float32(255.0)
    if dtype == np.uint16:
        return (array.astype(np.float64) / 65535.0).astype(np.float32)
    if dtype.kind != "f":
        raise ValueError(f"{name}: pixels of dtype {array.dtype} are not accepted (uint8 0..255, uint16 0..65535 "
                         f"or float on [0, 1])")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} value(s) are NaN or infinite (pixels must be finite)")
    lo, hi = float(array.min()), float(array.max())
    if lo < FLOAT_RANGE[0] or hi > FLOAT_RANGE[1]:
        raise ValueError(f"{name}: float pixels must lie in [0, 1], found {lo:.9g}..{hi:.9g} (for 8-bit data pass uint8 "
                         "or divide by 255)")
    return array.astype(np.float32)


def decode(array, name: str = "the input array") -> Pixels:
    """An HxW / HxWxC array (C in 1, 2, 3, 4) of uint8, uint16 or float on [0, 1] -> Pixels; ValueError naming
    `name` otherwise."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.ndim not in (2, 3) or array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"{name}: expected HxW, HxWx1, HxWx2, HxWx3 or HxWx4 pixels, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    values = _values(array, name)
    if values.ndim == 2:
        values = values[..., None]
    channels = values.shape[2]
    alpha = np.ascontiguousarray(values[..., -1]) if channels in (2, 4) else None
    colour = values[..., :-1] if alpha is not None else values
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder not in ("=", "|") else array.dtype
    return Pixels(np.ascontiguousarray(colour), alpha, dtype, array.ndim)


def quantize(values: np.ndarray, dtype) -> np.ndarray:
    """Float [0, 1] -> `dtype` (uint8 / uint16: clipped, scaled, rounded; float: clipped)."""
    dtype = np.dtype(dtype)
    clipped = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if dtype in _SCALES:
        return np.round(clipped * _SCALES[dtype]).astype(dtype)
    return clipped.astype(dtype)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """A model's HxWx3 output back to HxWx1 for grayscale sources (channel mean, float64 accumulation so that
    to_gray(repeated gray) is exact)."""
    return np.asarray(rgb, dtype=np.float64).mean(axis=2, keepdims=True).astype(np.float32)


def encode(source: Pixels, rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """The model's HxWx3 output (float) in the source's form: gray reduced back, the alpha (already resized)
    appended, HxW kept HxW, in the source's dtype."""
    colour = to_gray(rgb) if source.is_grayscale else np.asarray(rgb, dtype=np.float32)
    if source.alpha is not None:
        if alpha is None or alpha.shape != colour.shape[:2]:
            raise ValueError(f"alpha of shape {None if alpha is None else alpha.shape} for an output of "
                             f"{colour.shape[:2]}")
        colour = np.concatenate([colour, alpha[..., None]], axis=2)
    out = quantize(colour, source.dtype)
    return out[..., 0] if source.ndim == 2 else out


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic resize of an HxW alpha map to (H*scale, W*scale), clipped to [0, 1]."""
    from PIL import Image as PILImage

    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be HxW, got shape {alpha.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    height, width = alpha.shape
    resized = PILImage.fromarray(alpha).resize((width * scale, height * scale), PILImage.Resampling.BICUBIC)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def upscale_array(upscale_rgb, array, scale: int, name: str = "the input array") -> np.ndarray:
    """`upscale_rgb` (float HxWx3 on [0, 1] -> HxWx3 x scale) applied to any accepted array (the table above),
    returning the source's form and dtype. Bad input raises ValueError naming `name` before the model runs."""
    pixels = decode(array, name)
    out = upscale_rgb(pixels.rgb())
    alpha = upscale_alpha(pixels.alpha, scale) if pixels.alpha is not None else None
    return encode(pixels, out, alpha)
