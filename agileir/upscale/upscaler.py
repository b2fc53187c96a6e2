"""One object that applies a runner to images: tiling plan (memory budget), pre/post-processing, output contract.

    upscaler = Upscaler(runner, TilingOptions())        # runner: an agileir Runner, or anything with .scale and
    result = upscaler.upscale_image(read_image(path))   # .upscale / __call__ on (B, 3, h, w) float32 (.window,
    frames = upscaler.upscale_frames(rgbs)              # .config refine the tiling)
    Upscaler(CallableRunner(fn, scale=4))                # a bare (B, 3, h, w) function (an ONNX session's run)

Every run of the toolkit that writes upscaled images (agileir-infer's image and folder runs, `agileir video`,
the Ray actors of `agileir batch`) goes through this object, so they share one rule set: `--tile auto` against
the memory budget, one overlap, colour/grayscale/alpha handling, and agileir.upscale.contract on every model
call. The job functions around it (agileir.upscale.files, agileir.upscale.video) add decode, the pipeline and
the write; agileir.upscale.stages holds the per-image steps every run calls.

The memory budget (`TilingOptions.max_memory`, default half of the memory available) belongs to the host:
`sharers` processes that run on one host at once (the Ray actors of `agileir batch` on one node) each get
their share of it, so `--actors 4` on one host budgets the same memory as one process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.images import Image
from .arrays import BatchUpscaler, Upscaled, apply_to_images, apply_to_rgbs
from .memory import TilePlan, default_budget, plan_tiling
from .options import TilingOptions


@dataclass
class CallableRunner:
    """A bare batch function as a runner for `Upscaler`: `upscale` (B, 3, h, w) -> (B, 3, h*scale, w*scale);
    `window` aligns tiles, `config` (SRConfig or its dict; None: the bundled model's sizes) sizes the estimate."""

    upscale: BatchUpscaler
    scale: int
    window: int = 1
    config: Any = None


class Upscaler:
    """`runner` with `tiling` (one TilingOptions for the whole run; its budget is read once, when first needed,
    and divided among the `sharers` processes that share the host)."""

    def __init__(self, runner: Any, tiling: TilingOptions | None = None, sharers: int = 1) -> None:
        self.runner = runner
        self.tiling = tiling if tiling is not None else TilingOptions()
        self.scale = int(runner.scale)
        self.align = int(getattr(runner, "window", 1) or 1)
        self.config = getattr(runner, "config", None)
        self._call = getattr(runner, "upscale", runner)
        self.sharers = max(1, int(sharers))
        self._budget: int | None = None

    @property
    def budget(self) -> int:
        """This process's memory budget in bytes: the host's (--max-memory, else half of what is available) over
        `sharers`."""
        if self._budget is None:
            host = self.tiling.max_memory if self.tiling.max_memory is not None else default_budget()
            self._budget = host // self.sharers
        return self._budget

    def plan(self, height: int, width: int, share: int = 1) -> TilePlan:
        """The tiling of one height x width input; `share`: inputs per model call (they split the budget)."""
        tile = "auto" if self.tiling.tile is None else self.tiling.tile
        return plan_tiling(self.config, height, width, self.scale, tile, self.tiling.overlap,
                           self.budget // max(1, share))

    def upscale_images(self, images: list[Image], plan: TilePlan | None = None) -> list[Upscaled]:
        """Same-size images in one model call (colour through the model, grayscale kept, alpha upscaled)."""
        if plan is None:
            h, w = images[0].rgb.shape[:2]
            plan = self.plan(h, w, share=len(images))
        return apply_to_images(self._call, images, self.scale, plan.tile, plan.overlap, align=self.align)

    def upscale_image(self, image: Image, plan: TilePlan | None = None) -> Upscaled:
        return self.upscale_images([image], plan)[0]

    def upscale_rgb(self, rgb: np.ndarray, name: str = "image", echo=None) -> np.ndarray:
        """One HxWx3 float [0, 1] image (eval, validate, the Python API); `echo` gets the automatic-tiling note."""
        h, w = rgb.shape[:2]
        plan = self.plan(h, w)
        if plan.auto and echo is not None:
            echo(plan.message(name, h, w))
        return self.upscale_frames([rgb], plan)[0]

    def upscale_frames(self, rgbs: list[np.ndarray], plan: TilePlan | None = None) -> list[np.ndarray]:
        """Same-size HxWx3 float [0, 1] frames in one model call -> (H*s)x(W*s)x3 float [0, 1]."""
        if plan is None:
            h, w = rgbs[0].shape[:2]
            plan = self.plan(h, w, share=len(rgbs))
        return apply_to_rgbs(self._call, rgbs, self.scale, plan.tile, plan.overlap, align=self.align)


def image_notes(name: str, image: Image, plan: TilePlan) -> list[str]:
    """What a run says about one image before upscaling it: precision it cannot keep, automatic tiling."""
    notes = []
    if image.precision_lost:
        notes.append(f"warning: {name} has 16 bits per colour channel; it is read and written with 8 "
                     "(Pillow cannot keep 16-bit RGB)")
    if plan.auto:
        h, w = image.rgb.shape[:2]
        notes.append(plan.message(name, h, w))
    return notes


__all__ = ["CallableRunner", "Upscaler", "image_notes"]
