"""Command line: `agileir` (group), `agileir-export`, `agileir-infer`."""
from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path

import click

class CliError(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.message}", err=True)


def require_module(module: str, extra: str, needed_by: str, package: str | None = None) -> None:
    """One-line error naming the extra to install when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise CliError(f"{needed_by} needs {package or module} (pip install 'agileir[{extra}]')") from None


def friendly_errors(fn):
    """Bad input ends in one line on stderr and exit code 2, not a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .imageio import ImageError
        from .models.load import ModelLoadError

        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (ModelLoadError, ImageError, FileNotFoundError, ValueError) as e:
            raise CliError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        except Exception as e:
            if os.environ.get("AGILEIR_DEBUG"):
                raise
            raise CliError(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                           "(set AGILEIR_DEBUG=1 for the traceback)") from None
    return wrapper


def model_options(fn):
    fn = click.option("--preset", "preset_name", help="override the architecture inferred from the weights")(fn)
    fn = click.option("--upstream-compat", is_flag=True,
                      help="reproduce the official AgileIR forward (attention output discarded)")(fn)
    return fn


def load_torch_model(path: str | None, preset_name: str | None, upstream_compat: bool):
    from .models.load import load_model

    return load_model(path, preset_name, upstream_compat or None, fuse=True)


# Subcommands that live beside their subsystem; each module has `register(group)`. They are imported on
# first use, so that those modules can import the helpers above without an import cycle.
_SUBCOMMAND_MODULES = ("agileir.export.cli", "agileir.calibration.cli", "agileir.runtime.cli")


class _Group(click.Group):
    _registered = False

    def _register_subcommands(self) -> None:
        if not self._registered:
            self._registered = True
            import importlib

            for name in _SUBCOMMAND_MODULES:
                importlib.import_module(name).register(self)

    def get_command(self, ctx, cmd_name):
        self._register_subcommands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx):
        self._register_subcommands()
        return super().list_commands(ctx)


@click.group(cls=_Group)
@click.version_option(package_name="agileir")
def main():
    """AgileIR deployment toolkit: inspect, run, evaluate, export."""


@main.command()
@click.argument("model", required=False)
@model_options
@friendly_errors
def info(model, preset_name, upstream_compat):
    """Show the detected architecture, preset and size of MODEL (default: bundled AgileIR-light x4)."""
    from .models.load import load_model

    loaded = load_model(model, preset_name, upstream_compat or None)
    c = loaded.config
    click.echo(f"file:        {loaded.path}")
    click.echo(f"sha256:      {loaded.sha256}")
    click.echo(f"arch:        {c.arch}{' (upstream-compat forward)' if c.upstream_compat else ''}")
    click.echo(f"preset:      {loaded.preset or 'custom'}")
    click.echo(f"scale:       x{c.scale}")
    click.echo(f"window:      {c.window_size}")
    click.echo(f"embed/depth: {c.embed_dim} / {list(c.depths)} heads {list(c.num_heads)}"
               + (f" key_dims {list(c.key_dims)}" if c.key_dims else ""))
    click.echo(f"parameters:  {loaded.model.num_parameters():,}")
    click.echo(f"config:      {json.dumps(c.to_dict())}")


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
@click.option("--backend", type=click.Choice(["auto", "pytorch", "onnxruntime", "onnxruntime-cpu", "tensorrt"]),
              default="auto", show_default=True, help="override the backend chosen from the model file type")
@model_options
@friendly_errors
def infer_cmd(paths, output, tile, tile_overlap, hr_dir, backend, preset_name, upstream_compat):
    """Upscale INPUT (an image or a folder) with MODEL (default: bundled AgileIR-light x4)."""
    from tqdm import tqdm

    from .imageio import list_images, read_image, to_uint8, write_image
    from .inference import find_hr, upscale_image
    from .metrics import psnr_ssim_y
    from .runtime import load_runner

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
        dst = out / f"{src.stem}_x{scale}.png" if inp.is_dir() else out
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


@main.command(name="eval")
@click.argument("model", required=False)
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False),
              help="BasicSR-layout dataset (HR/ and LR_bicubic/X{scale}/)")
@click.option("--scale", type=int, help="defaults to the model's scale")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the table as JSON")
@model_options
@friendly_errors
def eval_cmd(model, dataset, scale, json_out, preset_name, upstream_compat):
    """PSNR/SSIM (Y channel, crop = scale) of MODEL on a benchmark, with bicubic as a row."""
    from tqdm import tqdm

    from .evaluation import benchmark_pairs, evaluate, format_table
    from .inference import torch_upscaler, upscale_rgb

    loaded = load_torch_model(model, preset_name, upstream_compat)
    scale = scale or loaded.config.scale
    if scale != loaded.config.scale:
        raise CliError(f"the model upscales x{loaded.config.scale}, not x{scale}")
    run = torch_upscaler(loaded.model)
    n = len(benchmark_pairs(Path(dataset), scale))
    with tqdm(total=n, desc="evaluating", unit="img") as bar:
        result = evaluate(lambda rgb: upscale_rgb(run, rgb, scale), dataset, scale, bar.update)
    click.echo(format_table(result))
    if json_out:
        payload = {"model": str(loaded.path), "sha256": loaded.sha256, "preset": loaded.preset,
                   **result.to_dict()}
        _write_json(Path(json_out), payload)
        click.echo(f"wrote {json_out}")


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


main.add_command(infer_cmd)


def infer_main():
    infer_cmd(prog_name="agileir-infer")


def export_main():
    main.get_command(None, "export")(prog_name="agileir-export")

