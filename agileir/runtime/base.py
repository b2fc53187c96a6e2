"""The runner interface every backend implements (Polygraphy's shape, see docs/runtime.md).

A runner is activated once (session / engine / buffers), then `infer({"lr": batch}) -> {"sr": out}` runs
one batch that fits the backend as it is, and `upscale(batch)` (also `runner(batch)`) takes any batch: it
splits batches above the backend's largest batch, tiles images beyond its largest H x W with
`agileir.upscale.tiling.upscale_tiled` and pads images below its smallest. `upscale` is an
`agileir.upscale.arrays.BatchUpscaler`, so `Upscaler(runner).upscale_image(image)` works.

This module imports neither torch nor a backend.
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from ..upscale.contract import check_upscaled
from ..upscale.tiling import DEFAULT_OVERLAP, upscale_tiled

INPUT, OUTPUT = "lr", "sr"  # the tensor names agileir-export writes


class DeviceUnavailable(RuntimeError):
    """The device a runner was asked to run on is not on this machine (e.g. --device cuda without a GPU): a
    missing capability of the machine (CLI exit code 3), not bad input."""


class Runner:
    """Base class: subclasses set `backend` and implement `_activate`, `_run` and (optionally) `_deactivate`."""

    backend = "?"

    def __init__(self, scale: int, description: str, precision: str = "fp32", window: int = 1) -> None:
        self.scale = int(scale)
        self.window = int(window)  # tiles start on multiples of it, so they see the whole image's windows
        self.description = description
        self.precision = precision
        self.is_active = False
        self.inference_time: float | None = None
        # (batch, height, width) limits of what one `_run` accepts; None: unbounded (e.g. a TensorRT
        # optimisation profile sets both).
        self.min_shape: tuple[int, int, int] = (1, 1, 1)
        self.max_shape: tuple[int, int, int] | None = None
        self.tile_overlap = DEFAULT_OVERLAP
        self.config = None  # the model's SRConfig (or its dict) where known: the memory estimate uses it

    # -- lifecycle ---------------------------------------------------------------------------------
    def activate(self) -> Runner:
        if not self.is_active:
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) float32 within min/max_shape -> (B, 3, h*s, w*s) float32."""
        raise NotImplementedError

    # -- inference ---------------------------------------------------------------------------------
    def infer(self, feed_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Polygraphy-style: one batch that fits the backend, no tiling. Activates on first use."""
        if set(feed_dict) != {INPUT}:
            raise ValueError(f"{self.backend} runner expects one input {INPUT!r}, got {sorted(feed_dict)}")
        self.activate()
        start = time.perf_counter()
        out = self._run(np.ascontiguousarray(feed_dict[INPUT], dtype=np.float32))
        self.inference_time = time.perf_counter() - start
        return {OUTPUT: out}

    def last_inference_time(self) -> float | None:
        return self.inference_time

    def upscale(self, batch: np.ndarray) -> np.ndarray:
        """Any (B, 3, h, w) float32 batch: split, tiled or padded to what the backend accepts."""
        self.activate()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        max_b = self.max_shape[0] if self.max_shape else batch.shape[0]
        if batch.shape[0] > max_b:
            return np.concatenate([self.upscale(batch[i:i + max_b]) for i in range(0, batch.shape[0], max_b)])
        h, w = batch.shape[2:]
        if self.max_shape and (h > self.max_shape[1] or w > self.max_shape[2]):
            tile = min(self.max_shape[1], self.max_shape[2])
            overlap = min(self.tile_overlap, tile // 2)
            return upscale_tiled(self._fitted, batch, self.scale, tile, overlap, align=self.window)
        return self._fitted(batch)

    __call__ = upscale

    def _fitted(self, batch: np.ndarray) -> np.ndarray:
        """`_run`, edge-padding a batch or an image smaller than min_shape first and cropping after."""
        b, _, h, w = batch.shape
        need_b, need_h, need_w = (max(b, self.min_shape[0]), max(h, self.min_shape[1]), max(w, self.min_shape[2]))
        if (need_b, need_h, need_w) == (b, h, w):
            return self._checked(batch, self._run(batch))
        padded = np.pad(batch, ((0, need_b - b), (0, 0), (0, need_h - h), (0, need_w - w)), mode="edge")
        return self._checked(padded, self._run(padded))[:b, :, :h * self.scale, :w * self.scale]

    def _checked(self, batch: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Every backend's output: scale x the input's shape, finite (agileir.upscale.contract)."""
        return check_upscaled(batch, out, self.scale, self.description)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} ({self.precision}, x{self.scale})>"
