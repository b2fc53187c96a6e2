"""`agileir-infer` (also `agileir infer`): upscale an image or a folder with any artifact."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (EXIT_FAILED, CliError, artifact_inputs, backend_option, friendly_errors, model_and_input,
                     model_options, require_module)
from .video import default_video_output, run_video, video_options


def _default_output(inp: Path, scale: int) -> Path:
    if inp.is_dir():
        return inp.parent / f"{inp.name}_x{scale}"
    return inp.with_name(f"{inp.stem}_x{scale}.png")


def _largest_side(images: list[Path]) -> int | None:
    """The largest side among the images (headers only; unreadable ones are left to the run to report)."""
    from PIL import Image

    side = None
    for path in images:
        try:
            with Image.open(path) as im:
                side = max(side or 0, *im.size)
        except Exception:
            continue
    return side


@click.command(name="infer")
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] INPUT")
@click.option("-o", "--output", help="output PNG (image input), folder (folder input) or video (video input: the "
                                    "container comes from the suffix) [default: INPUT_x{s}.png, INPUT_x{s}/, "
                                    "INPUT_x{s}.mkv]")
@click.option("--tile", default="auto", show_default=True,
              help="tile size in input pixels; auto: whole image unless over the memory budget; 0: whole image")
@click.option("--tile-overlap", default=16, show_default=True, type=click.IntRange(0),
              help="tile overlap in input pixels")
@click.option("--max-memory", help="memory budget for --tile auto, e.g. 4G [default: half of available memory]")
@click.option("--hr", "hr_dir", type=click.Path(exists=True, file_okay=False),
              help="folder of HR images: print PSNR/SSIM (Y, crop = scale) of what is written")
@click.option("--fail-fast", is_flag=True, help="folder input: stop at the first bad file (exit 2) instead of "
                                                "skipping it and reporting it at the end (exit 1)")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1),
              help="folder input: images of one size per model call (the memory budget is shared by the batch); "
                   "video input: frames per model call")
@video_options
@backend_option("override the backend chosen from the model file type; tensorrt / rtx on an .onnx file build "
                "(or reuse) a cached engine")
@click.option("--engine-cache", type=click.Path(file_okay=False),
              help="engine cache folder for --backend tensorrt/rtx on an .onnx file [default: $AGILEIR_ENGINE_CACHE, "
                   "else ~/.cache/agileir/engines]")
@model_options
@friendly_errors
def infer_cmd(paths, output, tile, tile_overlap, max_memory, hr_dir, fail_fast, batch, codec, crf, pix_fmt, start,
              frames, backend, engine_cache, preset_name, upstream_compat):
    """Upscale INPUT (an image, a folder or a video) with MODEL (default: bundled AgileIR-light x4).

    A video (.mp4, .mkv, .mov, .webm, ...; needs the `video` extra) is upscaled frame by frame with its audio and
    subtitles copied (--codec, --crf, --pix-fmt, --start, --frames; docs/video.md). A folder run writes NAME_x{s}.png per image (NAME_EXT_x{s}.png when two inputs share a name), skips
    unreadable files and reports them at the end (exit 1); no output may be an input of the run."""
    from ..io.atomic import sweep_stale
    from ..quality.evaluation import score_as_written
    from ..io.images import list_images, read_image, to_uint8, write_image
    from ..upscale.images import find_hr, upscale_image
    from ..upscale.memory import parse_size, parse_tile, plan_tiling
    from ..io.outputs import OutputFolder, check_outputs, folder_outputs, input_files
    from ..runtime import load_runner
    from ..upscale.video import is_video_path

    # cheap checks first: inputs, output names, collisions that do not depend on the scale
    model_path, inp = model_and_input(paths)
    if not inp.exists():
        raise CliError(f"input not found: {inp}")
    parse_tile(tile)
    budget = parse_size(max_memory) if max_memory else None
    if inp.is_file() and is_video_path(inp):
        return _video_run(model_path, inp, output, tile, tile_overlap, budget, batch, backend, engine_cache,
                          preset_name, upstream_compat, codec=codec, crf=crf, pix_fmt=pix_fmt, start=start,
                          frames=frames)
    images = list_images(inp)
    is_dir = inp.is_dir()
    inputs = artifact_inputs(model_path) + images + input_files(hr_dir)
    if output and not is_dir:
        if Path(output).suffix.lower() != ".png":
            raise CliError(f"the output must be a .png file: {output}")
        check_outputs([(output, inp)], inputs)
    if output and is_dir and Path(output).is_file():
        raise CliError(f"the output of a folder run must be a folder, not the file {output}")

    runner = load_runner(model_path, preset=preset_name, upstream_compat=upstream_compat, backend=backend,
                         engine_cache=engine_cache, batch=batch, echo=lambda m: click.echo(m, err=True),
                         max_side=_largest_side(images) if backend in ("tensorrt", "rtx") else None)
    scale, upscale = runner.scale, runner.upscale
    click.echo(f"model: {runner.description} via {runner.backend}, x{scale}", err=True)
    out = Path(output) if output else _default_output(inp, scale)
    plan = folder_outputs(images, out, scale) if is_dir else {inp: out}
    check_outputs([(dst, src) for src, dst in plan.items()], inputs)  # before any work
    folder = OutputFolder(out if is_dir else out.parent)
    sweep_stale(folder.path)

    scores, failed = [], []

    def describe(src: Path, dst: Path, result, written: int, grayscale: bool) -> str:
        line = f"{src.name} -> {dst} ({result.rgb.shape[1]}x{result.rgb.shape[0]}, {written}-bit)"
        if hr_dir:
            hr_path = find_hr(Path(hr_dir), src, scale)
            if hr_path is None:
                line += "  [no HR found]"
            else:
                hr = to_uint8(read_image(hr_path).to_rgb())
                psnr, ssim = score_as_written(result.rgb, hr, scale, grayscale)
                scores.append((psnr, ssim))
                line += f"  PSNR {psnr:.3f} dB  SSIM {ssim:.4f} (Y, crop {scale}, vs {hr_path.name})"
        return line

    def notes(src: Path, image, tiling) -> list[str]:
        found = []
        if image.precision_lost:
            found.append(f"warning: {src.name} has 16 bits per colour channel; it is read and written with 8 "
                         "(Pillow cannot keep 16-bit RGB)")
        if tiling.auto:
            h, w = image.rgb.shape[:2]
            found.append(tiling.message(src.name, h, w))
        return found

    try:
        if is_dir:
            _folder_run(runner, images, plan, folder, tile, tile_overlap, budget, batch, fail_fast, failed,
                        describe, notes)
        else:
            image = read_image(inp)
            h, w = image.rgb.shape[:2]
            tiling = plan_tiling(runner.config, h, w, scale, tile, tile_overlap, budget)
            for note in notes(inp, image, tiling):
                click.echo(note, err=True)
            result = upscale_image(upscale, image, scale, tiling.tile, tiling.overlap, align=runner.window)
            folder.ensure()
            written = write_image(out, result.rgb, result.alpha, result.bit_depth)
            folder.written += 1
            click.echo(describe(inp, out, result, written, image.is_grayscale))
    finally:
        folder.discard_if_unused()
    if len(scores) > 1:
        click.echo(f"mean PSNR {sum(s[0] for s in scores) / len(scores):.3f} dB  "
                   f"SSIM {sum(s[1] for s in scores) / len(scores):.4f} over {len(scores)} images")
    if is_dir:
        summary = f"{folder.written} written, {len(failed)} failed"
        if failed:
            summary += ": " + "; ".join(reason for _, reason in failed)
        click.echo(summary, err=True)
        if failed:
            raise click.exceptions.Exit(EXIT_FAILED)


def _video_run(model_path, inp: Path, output, tile, tile_overlap, budget, batch, backend, engine_cache, preset_name,
               upstream_compat, **encoding) -> None:
    """A video input: frames through the model, audio/subtitles copied (agileir.upscale.video); --tile auto plans the
    tiling once from the frame size and the memory budget (shared by the frames of one batch)."""
    require_module("av", "video", "agileir-infer")
    from ..upscale.memory import default_budget, plan_tiling
    from ..io.outputs import check_outputs
    from ..runtime import load_runner
    from ..upscale.video import video_frame_size

    if output:  # before the model loads
        check_outputs([(output, inp)], artifact_inputs(model_path) + [inp])
    h, w = video_frame_size(inp)
    runner = load_runner(model_path, preset=preset_name, upstream_compat=upstream_compat, backend=backend,
                         engine_cache=engine_cache, max_side=max(h, w), batch=batch, echo=lambda m: click.echo(m, err=True))
    click.echo(f"model: {runner.description} via {runner.backend}, x{runner.scale}", err=True)
    out = Path(output) if output else default_video_output(inp, runner.scale)
    if not output:  # the default name needs the scale
        check_outputs([(out, inp)], artifact_inputs(model_path) + [inp])
    tiling = plan_tiling(runner.config, h, w, runner.scale, tile, tile_overlap, (budget or default_budget()) // batch)
    if tiling.auto:
        click.echo(tiling.message(inp.name, h, w), err=True)
    run_video(runner, inp, out, tile=tiling.tile, tile_overlap=tiling.overlap, batch=batch, **encoding)


def _folder_run(runner, images, plan, folder, tile, tile_overlap, budget, batch, fail_fast, failed, describe, notes):
    """The folder on the staged pipeline (decode -> infer -> encode overlap; results and lines in input order).

    A file that cannot be read is skipped and reported (or, with --fail-fast, ends the run with exit 2); an
    inference or write failure (a full disk, an unwritable folder) would repeat for every file, so it ends the
    run with one error line (exit 2). The memory budget is shared by the images of one batch."""
    import threading

    from tqdm import tqdm

    from ..upscale.files import upscale_files
    from ..upscale.memory import default_budget, plan_tiling

    per_image = (budget or default_budget()) // batch
    info: dict[Path, tuple] = {}  # src -> (grayscale, notes), filled by the decode threads
    lock = threading.Lock()

    def tiling(src: Path, image):
        h, w = image.rgb.shape[:2]
        chosen = plan_tiling(runner.config, h, w, runner.scale, tile, tile_overlap, per_image)
        info[src] = (image.is_grayscale, notes(src, image, chosen))
        return chosen.tile, chosen.overlap

    def dst_of(src: Path) -> Path:
        with lock:  # the folder appears with the first file written, never empty
            folder.ensure()
        return plan[src]

    bar = tqdm(total=len(images), desc="upscaling", unit="img", disable=len(images) < 2)
    results = iter(upscale_files(runner, images, dst_of, batch=batch, fail_fast=fail_fast, tiling=tiling,
                                 progress=lambda r: bar.update(1)))
    try:
        for r in results:
            grayscale, found = info.pop(r.item, (False, []))
            for note in found:
                tqdm.write(note, file=sys.stderr)
            if r.ok:
                dst, result, written = r.value
                folder.written += 1
                tqdm.write(describe(r.item, dst, result, written, grayscale))
                continue
            if r.stage != "decode" or fail_fast:
                raise r.exception if r.exception is not None else CliError(r.error)
            failed.append((r.item, r.error))
            tqdm.write(f"skipped: {r.error}", file=sys.stderr)
    finally:
        results.close()  # every worker has finished: nothing is written after this
        bar.close()


def register(group: click.Group) -> None:
    group.add_command(infer_cmd)
