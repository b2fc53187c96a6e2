"""`agileir video`: upscale a video (PyAV, extra `video`); audio and subtitles copied, timestamps kept."""
from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, backend_option, friendly_errors, model_and_input, model_options, require_module


def video_options(fn):
    """The encoding and range options, shared by `agileir video` and `agileir-infer` on a video input."""
    for option in reversed([
        click.option("--codec", default="libx264", show_default=True,
                     help="video encoder (FFmpeg name), e.g. libx265, ffv1"),
        click.option("--crf", default=18, show_default=True, type=click.IntRange(0, 63),
                     help="constant rate factor (x264/x265/vpx/av1 encoders; 0 is lossless for x264)"),
        click.option("--pix-fmt", default="yuv420p", show_default=True, help="encoded pixel format, e.g. yuv444p, rgb24"),
        click.option("--start", default=0.0, show_default=True, type=click.FloatRange(0), help="first second to upscale"),
        click.option("--frames", type=click.IntRange(1), help="number of frames to upscale (a trial run) [default: all]"),
    ]):
        fn = option(fn)
    return fn


def default_video_output(inp: Path, scale: int) -> Path:
    return inp.with_name(f"{inp.stem}_x{scale}.mkv")


def run_video(runner, inp: Path, out: Path, *, codec, crf, pix_fmt, start, frames, tile, tile_overlap,
              batch) -> None:
    """upscale_video with a progress line on stderr and the one-line summary on stdout."""
    from ..upscale.video import VideoProgress, upscale_video

    def progress(p: VideoProgress) -> None:
        total = f"/{p.total}" if p.total is not None else ""
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s is not None else ""
        click.echo(f"\rframe {p.frames}{total}  {p.fps:.2f} frames/s{eta}   ", err=True, nl=False)

    result = upscale_video(runner, inp, out, codec=codec, crf=crf, pix_fmt=pix_fmt, start=start, frames=frames,
                           tile=tile, tile_overlap=tile_overlap, progress=progress, batch=batch)
    click.echo("", err=True)
    copied = f", copied {', '.join(result.copied_streams)}" if result.copied_streams else ""
    dropped = f", left out {', '.join(result.dropped_streams)}" if result.dropped_streams else ""
    click.echo(f"{inp} -> {out} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
               f"{result.fps:.2f} frames/s{copied}{dropped})")


@click.command(name="video")
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] INPUT")
@click.option("-o", "--output", help="output video; the container comes from its suffix [default: INPUT_x{scale}.mkv]")
@video_options
@click.option("--tile", default=0, show_default=True, help="tile size in input pixels (0: whole frame)")
@click.option("--tile-overlap", default=16, show_default=True, help="tile overlap in input pixels")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1), help="frames per model call")
@backend_option("override the backend chosen from the model file type")
@model_options
@friendly_errors
def video_cmd(paths, output, codec, crf, pix_fmt, start, frames, tile, tile_overlap, batch, backend, preset_name,
              upstream_compat):
    """Upscale the video INPUT with MODEL (default: bundled AgileIR-light x4)."""
    require_module("av", "video", "agileir video")
    from ..runtime import load_runner

    model_path, inp = model_and_input(paths)
    if not inp.is_file():
        raise CliError(f"input not found: {inp}")
    runner = load_runner(model_path, preset=preset_name, upstream_compat=upstream_compat, backend=backend)
    out = Path(output) if output else default_video_output(inp, runner.scale)
    click.echo(f"model: {runner.description} via {runner.backend}, x{runner.scale}", err=True)
    run_video(runner, inp, out, codec=codec, crf=crf, pix_fmt=pix_fmt, start=start, frames=frames, tile=tile,
              tile_overlap=tile_overlap, batch=batch)


def register(group: click.Group) -> None:
    group.add_command(video_cmd)
