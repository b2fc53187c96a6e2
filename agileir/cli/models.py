"""`agileir info` and `agileir eval`: a checkpoint's architecture, and its PSNR/SSIM on a benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .common import CliError, device_option, friendly_errors, model_options, overwrite_option


@click.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="print the description as JSON")
@model_options
@friendly_errors
def info(model, as_json, preset_name, upstream_compat):
    """Describe MODEL (default: bundled AgileIR-light x4): a checkpoint (architecture, preset, size), an .onnx file
    (architecture, scale, form, precision, opset, node counts, the export.json beside it) or an engine (its
    engine.json). ONNX files and engines need no PyTorch."""
    from ..runtime.describe import describe_artifact

    description = describe_artifact(model, preset_name, upstream_compat)
    if as_json:
        click.echo(json.dumps(description.data, indent=2, default=str))
        return
    for line in description.lines():
        click.echo(line)


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
