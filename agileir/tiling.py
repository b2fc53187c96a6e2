"""Tiled upscaling for images larger than memory or an engine profile allows.

Tiles overlap and are blended with a separable ramp weight, so seams fade out instead of showing.
The model is any callable mapping (B, C, h, w) to (B, C, h*scale, w*scale); backends reuse this.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, size) with tiles of `tile` overlapping by at least `overlap`."""
    if tile >= size:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got {overlap} for tile {tile}")
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return starts


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: rises over `overlap` samples at inner edges, flat elsewhere."""
    w = np.ones(length, dtype=np.float64)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float64) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], ramp)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def upscale_tiled(upscale: UpscaleFn, image: np.ndarray, scale: int, tile: int, overlap: int = 16,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Upscale an NCHW float array tile by tile. `tile` and `overlap` are in input pixels."""
    _, _, h, w = image.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        return upscale(image)
    out = None
    weight_sum = np.zeros((h * scale, w * scale), dtype=np.float64)
    for y in ys:
        for x in xs:
            th, tw = min(tile, h), min(tile, w)
            sr = upscale(image[:, :, y:y + th, x:x + tw])
            if out is None:
                out = np.zeros(sr.shape[:2] + (h * scale, w * scale), dtype=np.float64)
            wy = _ramp(th * scale, overlap * scale, y == 0, y + th >= h)
            wx = _ramp(tw * scale, overlap * scale, x == 0, x + tw >= w)
            weight = np.outer(wy, wx)
            region = (slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
            out[:, :, region[0], region[1]] += sr * weight
            weight_sum[region] += weight
            if progress:
                progress(1)
    return (out / weight_sum).astype(image.dtype)


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    return len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))
