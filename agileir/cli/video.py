"""`agileir video`: upscale a video (PyAV, extra `video`); audio and subtitles copied, timestamps kept."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..runtime.artifacts import artifact_inputs
from .common import (CliError, friendly_errors, model_and_input, overwrite_option, require_module,
                     runner_options)
from .options import encoding_options, pipeline_options, tiling_options


def default_video_output(inp: Path, scale: int) -> Path:
    return inp.with_name(f"{inp.stem}_x{scale}.mkv")


def run_video(spec, inp: Path, output: str | None, tiling, encoding, pipeline, needed_by: str,
              strict: bool = False, overwrite: bool = False) -> None:
    """The video run of `agileir video` and `agileir-infer` on a video: output claimed in the run's output gate
    before the model loads (the default name, which needs the scale, right after), one
    agileir.upscale.video.upscale_video call, a progress line on stderr (ended by a newline before any other
    line, an error's too), `warning:` lines for a damaged input, the summary on stdout. `strict`: a damaged input
    is an error (exit 2), nothing written. `overwrite`: an existing file agileir did not write is replaced."""
    require_module("av", "video", needed_by)
    from ..io.gate import OutputGate
    from ..runtime import load_runner
    from ..upscale.upscaler import Upscaler
    from ..upscale.video import VideoProgress, upscale_video, video_frame_size
    from ..upscale.writing import VIDEO, RunOutputs

    gate = OutputGate([*artifact_inputs(spec.artifact), inp], overwrite)
    if output:
        gate.claim(output, VIDEO, f"output of {inp}")
    h, w = video_frame_size(inp)
    runner = load_runner(spec, max_side=max(h, w), batch=pipeline.batch, echo=lambda m: click.echo(m, err=True))
    click.echo(f"model: {runner.description} via {runner.backend}, x{runner.scale}", err=True)
    out = Path(output) if output else gate.claim(default_video_output(inp, runner.scale), VIDEO, f"output of {inp}")

    shown = []

    def progress(p: VideoProgress) -> None:
        total = f"/{p.total}" if p.total is not None else ""
        eta = f", ETA {p.eta_s:.0f} s" if p.eta_s is not None else ""
        click.echo(f"\rframe {p.frames}{total}  {p.fps:.2f} frames/s{eta}   ", err=True, nl=False)
        shown.append(True)

    try:
        result = upscale_video(Upscaler(runner, tiling), inp, out, encoding, pipeline, progress, RunOutputs(gate),
                               strict)
    finally:
        if shown:  # end the progress line, so that an error or warning starts a line of its own
            click.echo("", err=True)
    for note in result.notes:
        click.echo(note, err=True)
    copied = f", copied {', '.join(result.copied_streams)}" if result.copied_streams else ""
    dropped = f", left out {', '.join(result.dropped_streams)}" if result.dropped_streams else ""
    click.echo(f"{inp} -> {out} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
               f"{result.fps:.2f} frames/s{copied}{dropped})")


@click.command(name="video")
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] INPUT")
@click.option("-o", "--output", help="output video; the container comes from its suffix [default: INPUT_x{scale}.mkv]")
@encoding_options
@tiling_options
@pipeline_options("frames per model call (the memory budget is shared by them)", fail_fast=False)
@click.option("--strict", is_flag=True, help="a damaged input (packets that fail to decode, frames missing against "
                                            "the container's count) is an error (exit 2, no output) instead of a "
                                            "warning")
@runner_options()
@overwrite_option
@friendly_errors
def video_cmd(paths, output, encoding, tiling, pipeline, strict, runner, overwrite):
    """Upscale the video INPUT with MODEL (default: bundled AgileIR-light x4). A rerun replaces the video it
    wrote; an existing file agileir did not write is refused unless --overwrite, the input always. Exit codes:
    2 bad input or options, an output refused, a full disk, a damaged input with --strict; 3 a missing package;
    130/143 interrupted."""
    require_module("av", "video", "agileir video")
    model_path, inp = model_and_input(paths)
    if not inp.is_file():
        raise CliError(f"input not found: {inp}")
    run_video(replace(runner, artifact=model_path), inp, output, tiling, encoding, pipeline, "agileir video", strict,
              overwrite)


def register(group: click.Group) -> None:
    group.add_command(video_cmd)
