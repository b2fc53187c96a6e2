"""Peak-memory estimate of an upscale, the memory budget, and the automatic tiling it implies.

One home for the rule (docs/reliability.md, "Memory budget"), used by every command that runs whole images:

    peak ≈ BASE + pixels_per_call × per_pixel(config) + image_pixels × per_image_pixel(scale, tiled)

* per_pixel: the transformer's working set per input pixel of one backend call, float32:
  ACT × embed_dim × (1 + mlp_ratio)  (block activations, MLP hidden, residuals)
  + ATTN × window² × heads_at_once   (window attention scores + softmax; AgileIR's cascaded groups run one
  at a time, SwinIR's heads together) + the upsampler's scale² × 3 output channels;
* per_image_pixel: the input and output arrays the caller holds (output float32 plus its clipped copy, or
  the tiler's float32 accumulator and weight map);
* ACT, ATTN and BASE were fitted to peak RSS measured with bench/memory_bench.py --calibrate (PyTorch CPU,
  tiny and bundled models, 64^2..384^2); the fit and its error are in bench/results/memory_cpu.json.

Budget: `--max-memory` (e.g. 4G, 512M) or, by default, BUDGET_FRACTION of MemAvailable (/proc/meminfo;
os.sysconf elsewhere). Above it a whole-image run is tiled with the largest window-aligned tile that fits.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .tiling import DEFAULT_OVERLAP

BASE_BYTES = 265 * 2**20  # interpreter + torch + model: intercept of the measured fit
ACT = 7.0  # float32 copies of embed_dim x (1 + mlp_ratio) per pixel, fitted (bundled model: 6.85)
ATTN = 2.0  # float32 copies of the window x window score rows per pixel (scores + softmax)
BUDGET_FRACTION = 0.5
MIN_TILE = 32


def _get(config, key, default):
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def per_pixel_bytes(config, scale: int) -> float:
    """Working set of one backend call per input pixel (float32). config: SRConfig, its dict, or None
    (then the bundled AgileIR-light x4's sizes: the largest bundled model)."""
    embed = _get(config, "embed_dim", 96)
    mlp = float(_get(config, "mlp_ratio", 2.0))
    window = _get(config, "window_size", 16)
    heads = list(_get(config, "num_heads", (12,)))
    arch = _get(config, "arch", "agileir")
    at_once = 1 if arch == "agileir" else max(heads)
    return 4.0 * (ACT * embed * (1 + mlp) + ATTN * window * window * at_once + 3 * scale * scale * 3)


def per_image_pixel_bytes(scale: int, tiled: bool) -> float:
    """Arrays the caller holds per input pixel: input, output (tiled: float32 sum + weights)."""
    # whole: the backend's float32 output and its clipped copy; tiled: float32 accumulator + weight map +
    # the clipped copy
    out = scale * scale * (4 * 3 * 2 + (4 if tiled else 0))
    return 4.0 * 3 * 2 + out


def _padded(n: int, window: int) -> int:
    return math.ceil(n / window) * window


def estimate_peak(config, height: int, width: int, scale: int, tile: int = 0) -> int:
    """Estimated peak bytes of upscaling one height x width image whole (tile 0) or in `tile` tiles."""
    window = _get(config, "window_size", 16)
    call_h, call_w = (height, width) if not tile else (min(tile, height), min(tile, width))
    call = _padded(call_h, window) * _padded(call_w, window)
    tiled = bool(tile) and (tile < height or tile < width)
    return int(BASE_BYTES + call * per_pixel_bytes(config, scale) + height * width * per_image_pixel_bytes(scale, tiled))


def available_memory() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
        m = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.M)
        if m:
            return int(m.group(1)) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int:
    avail = available_memory()
    return int(avail * BUDGET_FRACTION) if avail else 4 * 2**30


_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5g', '1000000' -> bytes (ValueError otherwise)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--max-memory must look like 4G, 512M or a number of bytes, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_tile(text: str | int | None) -> int | None:
    """--tile: 'auto' -> None, otherwise a size >= 0 (0: whole image)."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"--tile must be 'auto', 0 (whole image) or a tile size in pixels, got {text!r}")
    return value


@dataclass
class TilePlan:
    tile: int  # 0: whole image
    overlap: int
    auto: bool  # chosen automatically because the whole image is over budget
    estimate: int  # estimated peak bytes with this plan
    budget: int
    whole_estimate: int  # estimated peak bytes of the whole image, untiled

    def message(self, name: str, height: int, width: int) -> str:
        gib = 2**30
        return (f"note: {name} ({width}x{height}) needs ~{self.whole_estimate / gib:.1f} GiB whole, over the "
                f"{self.budget / gib:.1f} GiB memory budget: tiling {self.tile}x{self.tile} with overlap "
                f"{self.overlap} (~{self.estimate / gib:.1f} GiB; --tile 0 forces the whole image, "
                "--max-memory sets the budget)" + ("; the input and output arrays alone exceed the budget"
                                                   if self.estimate > self.budget else ""))


def plan_tiling(config, height: int, width: int, scale: int, tile: str | int | None = "auto",
                overlap: int = DEFAULT_OVERLAP, budget: int | None = None) -> TilePlan:
    """The tile size for one image: an explicit --tile is kept (0: whole image); 'auto' keeps the whole
    image when its estimate fits the budget, else the largest window-aligned tile that fits."""
    budget = budget or default_budget()
    chosen = parse_tile(tile) if not isinstance(tile, int) else tile
    whole = estimate_peak(config, height, width, scale)
    if chosen is not None:
        return TilePlan(chosen, overlap, False, estimate_peak(config, height, width, scale, chosen), budget, whole)
    if whole <= budget:
        return TilePlan(0, overlap, False, whole, budget, whole)
    window = _get(config, "window_size", 16)
    size = _padded(max(height, width), window)
    while size > MIN_TILE and estimate_peak(config, height, width, scale, size) > budget:
        size = max(MIN_TILE, (size * 3 // 4) // window * window or window)
    size = max(size, 2 * overlap + window, 4 * window)
    size = max(size, 128) if estimate_peak(config, height, width, scale, size) > budget else size
    return TilePlan(size, min(overlap, size // 4), True, estimate_peak(config, height, width, scale, size), budget,
                    whole)
