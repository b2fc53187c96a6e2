"""`agileir info` and `agileir eval`: a checkpoint's architecture, and its PSNR/SSIM on a benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .common import CliError, device_option, friendly_errors, model_options, overwrite_option


@click.command()
@click.argument("model", required=False)
@model_options
@friendly_errors
def info(model, preset_name, upstream_compat):
    """Show the detected architecture, preset and size of MODEL (default: bundled AgileIR-light x4)."""
    from ..models.load import load_model

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


@click.command(name="eval")
@click.argument("model", required=False)
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False),
              help="BasicSR-layout dataset (HR/ and LR_bicubic/X{scale}/)")
@click.option("--scale", type=click.IntRange(1), help="defaults to the model's scale")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the table as JSON")
@model_options
@overwrite_option
@device_option()
@friendly_errors
def eval_cmd(model, dataset, scale, json_out, preset_name, upstream_compat, overwrite, device):
    """PSNR/SSIM (Y channel, crop = scale) of MODEL on a benchmark, with bicubic as a row."""
    from tqdm import tqdm

    from ..quality.evaluation import benchmark_pairs, evaluate, format_table
    from ..runtime import RunnerSpec, load_runner
    from ..upscale.upscaler import Upscaler
    from ..models.load import default_checkpoint
    from ..io.gate import OutputGate
    from ..io.outputs import input_files

    gate = OutputGate([Path(model) if model else default_checkpoint(), *input_files(dataset)], overwrite)
    if json_out:  # before the model loads: --json must not replace the checkpoint or a dataset file
        gate.claim(json_out, "evaluation report", "--json")
    runner = load_runner(RunnerSpec(model, "pytorch", device, preset_name, upstream_compat))
    loaded = runner.loaded
    scale = scale or loaded.config.scale
    if scale != loaded.config.scale:
        raise CliError(f"the model upscales x{loaded.config.scale}, not x{scale}")
    n = len(benchmark_pairs(Path(dataset), scale))
    with runner, tqdm(total=n, desc="evaluating", unit="img") as bar:
        upscaler = Upscaler(runner)
        result = evaluate(lambda rgb: upscaler.upscale_rgb(rgb, echo=lambda m: click.echo(m, err=True)),
                          dataset, scale, bar.update)
    click.echo(format_table(result))
    if json_out:
        payload = {"model": str(loaded.path), "sha256": loaded.sha256, "preset": loaded.preset,
                   "device": str(runner.device),
                   **result.to_dict()}
        gate.write_json(json_out, payload, "evaluation report")
        click.echo(f"wrote {json_out}")


def register(group: click.Group) -> None:
    group.add_command(info)
    group.add_command(eval_cmd)
