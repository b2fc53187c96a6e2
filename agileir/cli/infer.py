"""`agileir-infer` (also `agileir infer`): upscale an image, a folder or a video with any artifact."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from ..runtime.artifacts import artifact_inputs
from .common import (CheckFailed, CliError, friendly_errors, model_and_input, overwrite_option,
                     runner_options)
from .options import encoding_options, pipeline_options, tiling_options
from .video import run_video


def _default_output(inp: Path, scale: int) -> Path:
    if inp.is_dir():
        return inp.parent / f"{inp.name}_x{scale}"
    return inp.with_name(f"{inp.stem}_x{scale}.png")


class _Report:
    """Prints each item of an image or folder run (and its PSNR/SSIM against --hr), then the summary."""

    def __init__(self, hr_dir: str | None, scale: int, total: int) -> None:
        from tqdm import tqdm

        self.hr_dir, self.scale = hr_dir, scale
        self.scores: list[tuple[float, float]] = []
        self.bar = tqdm(total=total, desc="upscaling", unit="img", disable=total < 2)

    def __call__(self, item) -> None:
        from tqdm import tqdm

        self.bar.update(1)
        for note in item.notes:
            tqdm.write(note, file=sys.stderr)
        if item.ok:
            tqdm.write(self.line(item))
        elif item.skipped:
            tqdm.write(f"skipped: {item.error}", file=sys.stderr)

    def line(self, item) -> str:
        from ..io.images import read_image, to_uint8
        from ..quality.evaluation import score_as_written
        from ..upscale.files import find_hr

        rgb = item.result.rgb
        line = f"{item.source.name} -> {item.output} ({rgb.shape[1]}x{rgb.shape[0]}, {item.bits}-bit)"
        if not self.hr_dir:
            return line
        hr_path = find_hr(Path(self.hr_dir), item.source, self.scale)
        if hr_path is None:
            return line + "  [no HR found]"
        hr = to_uint8(read_image(hr_path).to_rgb())
        psnr, ssim = score_as_written(rgb, hr, self.scale, item.grayscale)
        self.scores.append((psnr, ssim))
        return line + f"  PSNR {psnr:.3f} dB  SSIM {ssim:.4f} (Y, crop {self.scale}, vs {hr_path.name})"

    def summary(self, result, is_dir: bool) -> int:
        self.bar.close()
        scores = self.scores
        if len(scores) > 1:
            click.echo(f"mean PSNR {sum(s[0] for s in scores) / len(scores):.3f} dB  "
                       f"SSIM {sum(s[1] for s in scores) / len(scores):.4f} over {len(scores)} images")
        if not is_dir:
            return 0
        failed = result.failed
        line = f"{len(result.written)} written, {len(failed)} failed"
        if failed:
            raise CheckFailed(line + ": " + "; ".join(item.error for item in failed))
        click.echo(line, err=True)
        return 0


def _check_output_kind(output: str | None, inp: Path) -> None:
    if output and not inp.is_dir() and Path(output).suffix.lower() != ".png":
        raise CliError(f"the output must be a .png file: {output}")
    if output and inp.is_dir() and Path(output).is_file():
        raise CliError(f"the output of a folder run must be a folder, not the file {output}")


@click.command(name="infer")
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] INPUT")
@click.option("-o", "--output", help="output PNG (image input), folder (folder input) or video (video input: the "
                                    "container comes from the suffix) [default: INPUT_x{s}.png, INPUT_x{s}/, "
                                    "INPUT_x{s}.mkv]")
@tiling_options
@click.option("--hr", "hr_dir", type=click.Path(exists=True, file_okay=False),
              help="folder of HR images: print PSNR/SSIM (Y, crop = scale) of what is written")
@pipeline_options("folder input: images of one size per model call (the memory budget is shared by the batch); "
                  "video input: frames per model call")
@encoding_options
@runner_options("override the backend chosen from the model file type; tensorrt / rtx on an .onnx file build "
                "(or reuse) a cached engine")
@overwrite_option
@friendly_errors
def infer_cmd(paths, output, tiling, hr_dir, pipeline, encoding, runner, overwrite):
    """Upscale INPUT (an image, a folder or a video) with MODEL (default: bundled AgileIR-light x4).

    A video (.mp4, .mkv, .mov, .webm, ...; needs the `video` extra) is upscaled frame by frame with its audio and
    subtitles copied (--codec, --crf, --pix-fmt, --start, --frames; docs/video.md). A folder run writes
    NAME_x{s}.png per image (NAME_EXT_x{s}.png when two inputs share a name), skips unreadable files and reports
    them at the end (exit 1). No output may be an input of the run; a rerun replaces the files it wrote, and an
    existing file agileir did not write is refused (exit 2) unless --overwrite."""
    from ..io.gate import OutputGate
    from ..io.images import list_images
    from ..io.outputs import OutputFolder, folder_outputs, input_files
    from ..runtime import load_runner
    from ..upscale.files import upscale_file, upscale_files
    from ..upscale.stages import engine_max_side
    from ..upscale.upscaler import Upscaler
    from ..upscale.video import is_video_path
    from ..upscale.writing import IMAGE, RunOutputs

    model_path, inp = model_and_input(paths)  # cheap checks first: inputs, output names and kinds
    if not inp.exists():
        raise CliError(f"input not found: {inp}")
    spec = replace(runner, artifact=model_path)
    if inp.is_file() and is_video_path(inp):
        return run_video(spec, inp, output, tiling, encoding, pipeline, "agileir-infer", overwrite=overwrite)
    images, is_dir = list_images(inp), inp.is_dir()
    gate = OutputGate(artifact_inputs(model_path) + images + input_files(hr_dir), overwrite)
    _check_output_kind(output, inp)
    if output and not is_dir:  # before the model loads; a folder's names need the model's scale
        gate.claim(output, IMAGE, f"output of {inp}")
    max_side = engine_max_side(spec.backend, images)  # an engine built for this run takes the largest image
    loaded = load_runner(spec, batch=pipeline.batch, max_side=max_side, echo=lambda m: click.echo(m, err=True))
    click.echo(f"model: {loaded.description} via {loaded.backend}, x{loaded.scale}", err=True)
    out = Path(output) if output else _default_output(inp, loaded.scale)
    plan = folder_outputs(images, out, loaded.scale) if is_dir else {inp: out}
    if is_dir or not output:
        for src, dst in plan.items():  # every output, before any work
            gate.claim(dst, IMAGE, f"output of {src}")
    upscaler, report = Upscaler(loaded, tiling), _Report(hr_dir, loaded.scale, len(plan))
    try:
        if is_dir:
            result = upscale_files(upscaler, plan, pipeline, RunOutputs(gate, OutputFolder(out)), on_item=report)
        else:
            result = None
            upscale_file(upscaler, inp, out, RunOutputs(gate), on_item=report)
    finally:
        report.bar.close()
    return report.summary(result, is_dir)


def register(group: click.Group) -> None:
    group.add_command(infer_cmd)
