"""`agileir-export`: checkpoint -> one ONNX file per form (model.onnx, model.plugin.onnx, model.attention.onnx;
agileir.export.forms) + export.json, and with --fp16 / --int8 the reduced-precision variants of each form; the
job itself is agileir.deploy.export_checkpoint."""
from __future__ import annotations

import click

from .common import CliError, friendly_errors, overwrite_option
from .options import export_request_options


@click.command(name="export")
@export_request_options
@overwrite_option
@friendly_errors
def export_cmd(request, overwrite):
    """Export MODEL (default: bundled AgileIR-light x4) to ONNX: standard ops, GSWA plugin and Attention forms."""
    from ..deploy import export_checkpoint
    from ..deploy.export import claim_export
    from ..io.progress import Progress

    result = export_checkpoint(request, claim_export(request, overwrite), progress=Progress.for_terminal(click.echo))
    click.echo(f"wrote {result.out_dir / 'export.json'}")
    if result.failed:
        raise CliError(f"ONNX Runtime validation failed for: {', '.join(result.failed)} (see export.json)")
    if result.engines is not None and result.engines.reason:
        click.echo(f"engines: not built here ({result.engines.reason}); the ONNX files are ready. On a machine with "
                   "TensorRT >= 10 and a GPU:")
        for line in result.engines.commands:
            click.echo(f"  {line}")
        click.echo("  (TensorRT-RTX engines for RTX GPUs build here, without a GPU: --target rtx)")


def register(group: click.Group) -> None:
    group.add_command(export_cmd)
