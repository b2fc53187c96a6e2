"""Whole-image upscaling around any backend: colour/alpha/grayscale handling and tiling."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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


def upscale_rgbs(upscale: BatchUpscaler, rgbs: list[np.ndarray], scale: int, tile: int = 0,
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


def upscale_rgb(upscale: BatchUpscaler, rgb: np.ndarray, scale: int, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                progress: Callable[[int], None] | None = None, align: int = 1) -> np.ndarray:
    """HxWx3 float [0, 1] -> (H*s)x(W*s)x3 float [0, 1]."""
    return upscale_rgbs(upscale, [rgb], scale, tile, overlap, progress, align)[0]


def upscale_images(upscale: BatchUpscaler, images: list[Image], scale: int, tile: int = 0,
                   overlap: int = DEFAULT_OVERLAP, progress: Callable[[int], None] | None = None,
                   align: int = 1) -> list[Upscaled]:
    """Same-size images in one call: colour through the model, grayscale kept grayscale, alpha upscaled."""
    if len({im.rgb.shape[:2] for im in images}) != 1:
        raise ValueError("upscale_images needs images of one size")
    rgbs = upscale_rgbs(upscale, [im.to_rgb() for im in images], scale, tile, overlap, progress, align)
    results = []
    for im, rgb in zip(images, rgbs):
        if im.is_grayscale:
            rgb = to_gray(rgb)
        alpha = upscale_alpha(im.alpha, scale) if im.alpha is not None else None
        results.append(Upscaled(rgb, alpha, im.bit_depth))
    return results


def upscale_image(upscale: BatchUpscaler, image: Image, scale: int, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                  progress: Callable[[int], None] | None = None, align: int = 1) -> Upscaled:
    return upscale_images(upscale, [image], scale, tile, overlap, progress, align)[0]


def find_hr(hr_dir: Path, lr_path: Path, scale: int) -> Path | None:
    """HR counterpart of an LR file: same stem, or the stem without BasicSR's 'x{scale}' suffix."""
    stems = [lr_path.stem]
    if lr_path.stem.endswith(f"x{scale}"):
        stems.append(lr_path.stem[: -len(f"x{scale}")])
    for stem in stems:
        for candidate in sorted(hr_dir.glob(f"{stem}.*")):
            if candidate.is_file():
                return candidate
    return None
