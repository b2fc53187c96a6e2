"""A procedurally drawn sample image, so validation needs no bundled photographs or benchmark data."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def sample_image(width: int = 60, height: int = 44, seed: int = 0) -> np.ndarray:
    """HxWx3 float32 on [0, 1]: gradients, hard edges, thin lines, a checker patch and mild noise --
    the structures super-resolution gets right or wrong. Deliberately not a multiple of 16."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 5.0) * np.cos(yy / 7.0)], axis=2)
    img = Image.fromarray((base * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse([width * 0.1, height * 0.15, width * 0.45, height * 0.7], fill=(230, 60, 40))
    draw.rectangle([width * 0.55, height * 0.2, width * 0.9, height * 0.55], outline=(20, 20, 120), width=2)
    for i in range(0, width, 4):
        draw.line([i, height - 10, i + 6, height - 1], fill=(250, 250, 250), width=1)
    checker = ((xx // 3 + yy // 3) % 2).astype(np.float32)
    out = np.asarray(img, dtype=np.float32) / 255.0
    patch = (slice(2, 12), slice(width - 14, width - 2))
    out[patch] = checker[patch][..., None] * 0.9 + 0.05
    out += rng.normal(0, 0.01, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0)
