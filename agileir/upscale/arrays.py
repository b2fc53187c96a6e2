"""The array step under `Upscaler`: a batch function applied to same-size images (colour, grayscale, alpha), tiled.

    outs = apply_to_rgbs(runner.upscale, rgbs, scale, tile=0, overlap=16, align=window)    # HxWx3 float [0, 1]
    results = apply_to_images(runner.upscale, images, scale)                              # io.images.Image

These take the tile size as given; choosing it (the memory budget, `--tile auto`) is `Upscaler.plan`'s job, so
code outside agileir.upscale calls `Upscaler` (agileir.upscale.upscaler), never these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .contract import check_upscaled
from ..io.images import Image, to_gray, upscale_alpha
from .tiling import DEFAULT_OVERLAP, upscale_tiled

BatchUpscaler = Callable[[np.ndarray], np.ndarray]  # (B, 3, h, w) float32 -> (B, 3, h*s, w*s)


@dataclass
class Upscaled:
    rgb: np.ndarray  # HxWx3 or HxWx1, float32 [0, 1]
    alpha: np.ndarray | None
    bit_depth: int


def apply_to_rgbs(upscale: BatchUpscaler, rgbs: list[np.ndarray], scale: int, tile: int = 0,
                  overlap: int = DEFAULT_OVERLAP, progress: Callable[[int], None] | None = None,
                  align: int = 1) -> list[np.ndarray]:
    """Same-size HxWx3 float [0, 1] images in one (B, 3, h, w) call -> their (H*s)x(W*s)x3 outputs, clipped
    to [0, 1]; the upscaler's output is checked against the contract whoever wrapped it."""
    batch = np.ascontiguousarray(np.stack([rgb.transpose(2, 0, 1) for rgb in rgbs]), dtype=np.float32)
    if tile:
        out = upscale_tiled(upscale, batch, scale, tile, overlap, progress, align)
    else:
        out = upscale(batch)
    check_upscaled(batch, out, scale)
    return [np.clip(sr.transpose(1, 2, 0), 0.0, 1.0) for sr in out]


def apply_to_images(upscale: BatchUpscaler, images: list[Image], scale: int, tile: int = 0,
                    overlap: int = DEFAULT_OVERLAP, progress: Callable[[int], None] | None = None,
                    align: int = 1) -> list[Upscaled]:
    """Same-size images in one call: colour through the model, grayscale kept grayscale, alpha upscaled."""
    if len({im.rgb.shape[:2] for im in images}) != 1:
        raise ValueError("apply_to_images needs images of one size")
    rgbs = apply_to_rgbs(upscale, [im.to_rgb() for im in images], scale, tile, overlap, progress, align)
    results = []
    for im, rgb in zip(images, rgbs):
        if im.is_grayscale:
            rgb = to_gray(rgb)
        alpha = upscale_alpha(im.alpha, scale) if im.alpha is not None else None
        results.append(Upscaled(rgb, alpha, im.bit_depth))
    return results


__all__ = ["BatchUpscaler", "Upscaled", "apply_to_images", "apply_to_rgbs"]
