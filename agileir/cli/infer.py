"""`agileir-infer` (also `agileir infer`): upscale an image or a folder with any artifact."""
from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, backend_option, friendly_errors, model_options


def _resolve_infer_args(paths: tuple[str, ...]) -> tuple[str | None, Path]:
    if len(paths) == 1:
        return None, Path(paths[0])
    if len(paths) == 2:
        return paths[0], Path(paths[1])
    raise CliError("expected [MODEL] INPUT")


def _output_path(inp: Path, out: str | None, is_dir: bool, scale: int, source: Path | None = None) -> Path:
    if out is None:
        if is_dir:
            return inp.parent / f"{inp.name}_x{scale}"
        return inp.with_name(f"{inp.stem}_x{scale}.png")
    return Path(out)


@click.command(name="infer")
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] INPUT")
@click.option("-o", "--output", help="output PNG (file input) or folder (folder input)")
@click.option("--tile", default=0, show_default=True, help="tile size in input pixels (0: whole image)")
@click.option("--tile-overlap", default=16, show_default=True, help="tile overlap in input pixels")
@click.option("--hr", "hr_dir", type=click.Path(exists=True, file_okay=False),
              help="folder of HR images: print PSNR/SSIM (Y, crop = scale)")
@backend_option("override the backend chosen from the model file type")
@model_options
@friendly_errors
def infer_cmd(paths, output, tile, tile_overlap, hr_dir, backend, preset_name, upstream_compat):
    """Upscale INPUT (an image or a folder) with MODEL (default: bundled AgileIR-light x4)."""
    from tqdm import tqdm

    from ..imageio import list_images, output_name, read_image, to_uint8, write_image
    from ..inference import find_hr, upscale_image
    from ..metrics import psnr_ssim_y
    from ..runtime import load_runner

    model_path, inp = _resolve_infer_args(paths)
    if not inp.exists():
        raise CliError(f"input not found: {inp}")
    runner = load_runner(model_path, preset_name, upstream_compat, backend=backend)
    scale, upscale = runner.scale, runner.upscale
    click.echo(f"model: {runner.description} via {runner.backend}, x{scale}", err=True)
    images = list_images(inp)
    out = _output_path(inp, output, inp.is_dir(), scale)
    if inp.is_dir():
        out.mkdir(parents=True, exist_ok=True)
    scores = []
    for src in tqdm(images, desc="upscaling", unit="img", disable=len(images) < 2):
        dst = out / output_name(src, scale) if inp.is_dir() else out
        if dst.resolve() == src.resolve():
            raise CliError(f"refusing to overwrite the input {src}")
        image = read_image(src)
        result = upscale_image(upscale, image, scale, tile, tile_overlap, align=runner.window)
        written = write_image(dst, result.rgb, result.alpha, result.bit_depth)
        line = f"{src.name} -> {dst} ({result.rgb.shape[1]}x{result.rgb.shape[0]}, {written}-bit)"
        if hr_dir:
            hr_path = find_hr(Path(hr_dir), src, scale)
            if hr_path is None:
                line += "  [no HR found]"
            else:
                hr = to_uint8(read_image(hr_path).to_rgb())
                sr = to_uint8(result.rgb if result.rgb.shape[2] == 3 else result.rgb.repeat(3, 2))
                psnr, ssim = psnr_ssim_y(sr, hr, scale)
                scores.append((psnr, ssim))
                line += f"  PSNR {psnr:.3f} dB  SSIM {ssim:.4f} (Y, crop {scale}, vs {hr_path.name})"
        tqdm.write(line)
    if len(scores) > 1:
        click.echo(f"mean PSNR {sum(s[0] for s in scores) / len(scores):.3f} dB  "
                   f"SSIM {sum(s[1] for s in scores) / len(scores):.4f} over {len(scores)} images")


def register(group: click.Group) -> None:
    group.add_command(infer_cmd)
