"""Click option groups that build the upscale path's option objects once (agileir.upscale.options).

Each group adds its options to a command and hands the command one object: `tiling=TilingOptions`,
`encoding=EncodingOptions`, `pipeline=PipelineOptions`. Defaults come from the dataclasses, so agileir-infer,
`agileir video` and `agileir batch` cannot drift apart.
"""
from __future__ import annotations

import functools
import math

import click

from ..upscale.options import EncodingOptions, PipelineOptions, TilingOptions
from .common import CliError

TILING, ENCODING, PIPELINE = TilingOptions(), EncodingOptions(), PipelineOptions()


class Seconds(click.ParamType):
    """A finite number of seconds >= 0 (click's FloatRange lets inf and nan through)."""
    name = "seconds"

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{value!r} is not a finite number of seconds >= 0", param, ctx)
        return seconds


def tiling_options(fn):
    """--tile auto|N, --tile-overlap N, --max-memory SIZE -> `tiling` (bad values: one error line, exit 2)."""
    @functools.wraps(fn)
    def wrapper(*args, tile, tile_overlap, max_memory, **kwargs):
        try:
            kwargs["tiling"] = TilingOptions.parse(tile, tile_overlap, max_memory)
        except ValueError as e:
            raise CliError(str(e)) from None
        return fn(*args, **kwargs)

    for option in reversed([
        click.option("--tile", default=TILING.tile_text, show_default=True,
                     help="tile size in input pixels; auto: whole image unless over the memory budget; 0: whole image"),
        click.option("--tile-overlap", default=TILING.overlap, show_default=True, type=click.IntRange(0),
                     help="tile overlap in input pixels"),
        click.option("--max-memory", help="memory budget for --tile auto, e.g. 4G [default: half of available "
                                          "memory]"),
    ]):
        wrapper = option(wrapper)
    return wrapper


def encoding_options(fn):
    """--codec --crf --pix-fmt --start --frames -> `encoding`."""
    @functools.wraps(fn)
    def wrapper(*args, codec, crf, pix_fmt, start, frames, **kwargs):
        kwargs["encoding"] = EncodingOptions(codec, crf, pix_fmt, start, frames)
        return fn(*args, **kwargs)

    for option in reversed([
        click.option("--codec", default=ENCODING.codec, show_default=True,
                     help="video encoder (FFmpeg name), e.g. libx265, ffv1"),
        click.option("--crf", default=ENCODING.crf, show_default=True, type=click.IntRange(0, 63),
                     help="constant rate factor (x264/x265/vpx/av1 encoders; 0 is lossless for x264)"),
        click.option("--pix-fmt", default=ENCODING.pix_fmt, show_default=True,
                     help="encoded pixel format, e.g. yuv444p, rgb24"),
        click.option("--start", default=ENCODING.start, show_default=True, type=Seconds(),
                     help="first second to upscale"),
        click.option("--frames", type=click.IntRange(1), help="number of frames to upscale (a trial run) "
                                                              "[default: all]"),
    ]):
        wrapper = option(wrapper)
    return wrapper


def pipeline_options(batch_help: str = "images or frames of one size per model call (the memory budget is shared "
                                       "by the batch)", fail_fast: bool = True):
    """--batch N [--fail-fast] -> `pipeline`."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, batch, fail_fast=PIPELINE.fail_fast, **kwargs):
            kwargs["pipeline"] = PipelineOptions(batch=batch, fail_fast=fail_fast)
            return fn(*args, **kwargs)

        if fail_fast:
            wrapper = click.option("--fail-fast", is_flag=True,
                                   help="folder input: stop at the first bad file (exit 2) instead of skipping it "
                                        "and reporting it at the end (exit 1)")(wrapper)
        return click.option("--batch", default=PIPELINE.batch, show_default=True, type=click.IntRange(1),
                            help=batch_help)(wrapper)
    return decorate


__all__ = ["Seconds", "encoding_options", "pipeline_options", "tiling_options"]
