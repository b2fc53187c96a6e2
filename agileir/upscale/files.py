"""Folder runs on the staged pipeline: read_image -> upscale (batched by size) -> write_image (atomic PNG).

    pipe = upscale_files(runner, sources, dst_of=lambda src: out / f"{src.stem}_x{runner.scale}.png", batch=4)
    for r in pipe:                     # agileir.upscale.pipeline.ItemResult, in input order; r.value = (dst, Upscaled, bits)
        ...

Each output equals the serial loop's (`read_image` -> `upscale_image` -> `write_image`); with batch > 1 the
model sees a (B, 3, h, w) batch, so floating-point results may differ from batch 1 in the last bits
(tested: at most one 8-bit level).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ..io.images import Image, read_image, write_image
from .images import Upscaled, upscale_image, upscale_images
from .pipeline import Pipeline, run_pipeline


def image_key(image: Image) -> tuple[int, int]:
    """Images with the same key can share one batch (the model sees only HxWx3 colour)."""
    return image.rgb.shape[0], image.rgb.shape[1]


class _Planned:
    """A decoded image with the (tile, overlap) chosen for it by `tiling`."""

    __slots__ = ("image", "tile", "overlap")

    def __init__(self, image: Image, tile: int, overlap: int) -> None:
        self.image, self.tile, self.overlap = image, tile, overlap


def upscale_files(runner: Any, sources: Iterable[Path], dst_of: Callable[[Path], Path], *, tile: int = 0,
                  overlap: int = 16, batch: int = 1, decode_workers: int = 2, encode_workers: int = 2,
                  queue_size: int = 4, fail_fast: bool = False, progress=None, handle_signals: bool = True,
                  tiling: Callable[[Path, Image], tuple[int, int]] | None = None) -> Pipeline:
    """Pipelined folder run with `runner` (an agileir Runner, or anything with .scale and .upscale/.__call__;
    .window aligns tiles). Each result's value is (dst, Upscaled, bits written).

    `tiling(src, image) -> (tile, overlap)`, called in the decode stage, chooses the tiling per image (e.g. by a
    memory budget, agileir.upscale.memory.plan_tiling) instead of the fixed `tile` / `overlap`; images batched together
    have one size, so the first one's choice is used for the batch."""
    upscale = getattr(runner, "upscale", runner)
    scale, align = runner.scale, getattr(runner, "window", 1)

    def decode(src):
        image = read_image(src)
        if tiling is None:
            return _Planned(image, tile, overlap)
        t, o = tiling(Path(src), image)
        return _Planned(image, t, o)

    def infer(value):
        if batch == 1:
            return upscale_image(upscale, value.image, scale, value.tile, value.overlap, align=align)
        first = value[0]
        return upscale_images(upscale, [v.image for v in value], scale, first.tile, first.overlap, align)

    def encode(src: Path, result: Upscaled):
        dst = Path(dst_of(Path(src)))
        return dst, result, write_image(dst, result.rgb, result.alpha, result.bit_depth)

    return run_pipeline(sources, decode, infer, encode, decode_workers=decode_workers,
                        encode_workers=encode_workers, queue_size=queue_size, batch=batch, fail_fast=fail_fast,
                        progress=progress, batch_key=lambda v: image_key(v.image), encode_takes_item=True,
                        handle_signals=handle_signals)


__all__ = ["image_key", "upscale_files"]
