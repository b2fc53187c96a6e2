"""Tiled upscaling for images larger than memory or an engine profile allows.

Tiles overlap and are blended with a separable ramp weight, so seams fade out instead of showing.
Tile starts are multiples of `align` (the model's window): a window transformer partitions each tile
from its top-left corner, so aligned tiles see the same windows as the whole image, and the last tile
runs to the image border where the model pads exactly as it does for the whole image.
The model is any callable mapping (B, C, h, w) to (B, C, h*scale, w*scale); backends reuse this.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

UpscaleFn = Callable[[np.ndarray], np.ndarray]

# tile overlap in input pixels: the one default of every command and library function that tiles
DEFAULT_OVERLAP = 16


def tile_spans(size: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, end) spans covering [0, size): starts are multiples of `align`, no span is longer than
    `tile`, neighbours overlap by at least `overlap`."""
    if tile >= size:
        return [(0, size)]
    stride = (tile - overlap) // align * align
    if stride <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"tile {tile} with overlap {overlap} leaves no stride aligned to {align}")
    spans, start = [], 0
    while start + tile < size:
        spans.append((start, start + tile))
        start += stride
    spans.append((start, size))
    return spans


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: rises over `overlap` samples at inner edges, flat elsewhere."""
    w = np.ones(length, dtype=np.float64)
    n = min(overlap, length)
    if n > 0:
        ramp = (np.arange(n, dtype=np.float64) + 0.5) / n
        if not at_start:
            w[:n] = np.minimum(w[:n], ramp)
        if not at_end:
            w[-n:] = np.minimum(w[-n:], ramp[::-1])
    return w


def upscale_tiled(upscale: UpscaleFn, image: np.ndarray, scale: int, tile: int, overlap: int = DEFAULT_OVERLAP,
                  progress: Callable[[int], None] | None = None, align: int = 1) -> np.ndarray:
    """Upscale an NCHW float array tile by tile. `tile`, `overlap` and `align` are in input pixels."""
    _, _, h, w = image.shape
    rows, cols = tile_spans(h, tile, overlap, align), tile_spans(w, tile, overlap, align)
    if len(rows) == 1 and len(cols) == 1:
        return upscale(image)
    out = None
    weight_sum = np.zeros((h * scale, w * scale), dtype=np.float32)  # float32: the accumulators dominate memory
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            sr = upscale(image[:, :, y0:y1, x0:x1])
            if out is None:
                out = np.zeros(sr.shape[:2] + (h * scale, w * scale), dtype=np.float32)
            # blend only over the overlap actually shared with the next/previous tile
            top = rows[i - 1][1] - y0 if i else 0
            bottom = y1 - rows[i + 1][0] if i + 1 < len(rows) else 0
            left = cols[j - 1][1] - x0 if j else 0
            right = x1 - cols[j + 1][0] if j + 1 < len(cols) else 0
            wy = np.minimum(_ramp((y1 - y0) * scale, top * scale, i == 0, True),
                            _ramp((y1 - y0) * scale, bottom * scale, True, i + 1 == len(rows)))
            wx = np.minimum(_ramp((x1 - x0) * scale, left * scale, j == 0, True),
                            _ramp((x1 - x0) * scale, right * scale, True, j + 1 == len(cols)))
            weight = np.outer(wy, wx).astype(np.float32)
            region = (slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale))
            out[:, :, region[0], region[1]] += sr * weight
            weight_sum[region] += weight
            if progress:
                progress(1)
    out /= weight_sum
    return out.astype(image.dtype, copy=False)
