"""`agileir-export`: checkpoint -> one ONNX file per form (model.onnx, model.plugin.onnx, model.attention.onnx;
agileir.export.forms) + export.json, and with --fp16 / --int8 the reduced-precision variants of each form; the
job itself is agileir.deploy.export_checkpoint."""
from __future__ import annotations

from pathlib import Path

import click

from ..calibration import CALIBRATORS
from ..export.forms import DEFAULT_FORM_SET, form_choices, forms_of
from ..export.targets import COMPAT_TARGETS
from .common import CliError, friendly_errors, model_options, overwrite_option, require_module, target_options


def static_shape_option(text: str | None) -> tuple[int, int, int, int] | None:
    """--static-shape BxCxHxW (all four dims: the exported graph is fixed to them)."""
    if not text:
        return None
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise CliError(f"--static-shape must look like 1x3x64x64, got {text!r}")
    return dims  # type: ignore[return-value]


@click.command(name="export")
@click.argument("model", required=False)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="output folder [default: export_<checkpoint name>]")
@click.option("--form", type=click.Choice(form_choices()), default=DEFAULT_FORM_SET, show_default=True,
              help="both: standard and plugin; all: also attention (ONNX Attention nodes, opset 23)")
@click.option("--static-shape", help="export for one input shape BxCxHxW instead of dynamic batch/H/W")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(17, 21))
@click.option("--fold", type=click.Choice(["all", "small"]), default="all", show_default=True,
              help="evaluate constant nodes at export: all (fewest nodes; the standard form stores the gathered "
                   "bias tables, ~7x the file) or small (weight transposes only, the small file)")
@click.option("--compat", type=click.Choice(COMPAT_TARGETS), default="latest", show_default=True,
              help="only what this TensorRT's ONNX parser imports: jetpack5 (TensorRT 8.5), jetpack6.0 (8.6), "
                   "jetpack6 (10.3), trt10, rtx, latest (docs/jetson.md)")
@click.option("--no-validate", is_flag=True, help="skip the ONNX Runtime parity check")
@click.option("--fp16", is_flag=True, help="also write FP16 variants (model[.plugin].fp16.onnx), FP32 I/O")
@click.option("--int8", is_flag=True, help="also write INT8 Q/DQ variants (model[.plugin].int8.onnx) and calibration.json")
@click.option("--calibrator", type=click.Choice(CALIBRATORS), default="entropy",
              show_default=True, help="INT8 activation range calibrator")
@click.option("--calib-dir", type=click.Path(file_okay=False),
              help="folder of LR calibration images [default: the bundled set]")
@click.option("--calib-json", type=click.Path(dir_okay=False),
              help="reuse the ranges of a calibration.json instead of calibrating")
@click.option("--fp16-keep-fp32", "fp16_block", help="comma-separated op types kept FP32 in the FP16 variant "
              "[default: LayerNormalization]; '' keeps none")
@target_options
@model_options
@overwrite_option
@friendly_errors
def export_cmd(model, out_dir, form, static_shape, opset, fold, compat, no_validate, fp16, int8, calibrator,
               calib_dir, calib_json, fp16_block, target, compute_capability, preset_name, upstream_compat, overwrite):
    """Export MODEL (default: bundled AgileIR-light x4) to ONNX: standard ops, GSWA plugin and Attention forms."""
    from ..calibration.writer import VariantOptions
    from ..deploy import EngineTarget, ExportRequest, export_checkpoint
    from ..deploy.export import claim_export
    from ..export.onnx_export import ExportOptions
    from ..runtime.tensorrt.builder import parse_compute_capabilities

    shape = static_shape_option(static_shape)
    caps = parse_compute_capabilities(compute_capability)
    _check_option_combinations(target, caps, int8, fp16, calibrator, calib_dir, calib_json, fp16_block)
    if fp16:
        require_module("onnxconverter_common", "onnx", "--fp16", package="onnxconverter-common")
    block = tuple(op.strip() for op in fp16_block.split(",") if op.strip()) if fp16_block is not None else None
    variants = VariantOptions(fp16, int8, calibrator, Path(calib_dir) if calib_dir else None,
                              Path(calib_json) if calib_json else None, block)
    request = ExportRequest(model, Path(out_dir) if out_dir else None, tuple(forms_of(form)),
                            ExportOptions(opset=opset, static_shape=shape, fold=fold, compat=compat), not no_validate,
                            variants, EngineTarget(target, caps), preset_name, upstream_compat)
    result = export_checkpoint(request, claim_export(request, overwrite), echo=click.echo)
    click.echo(f"wrote {result.out_dir / 'export.json'}")
    if result.failed:
        raise CliError(f"ONNX Runtime validation failed for: {', '.join(result.failed)} (see export.json)")
    if result.engines is not None and result.engines.reason:
        click.echo(f"engines: not built here ({result.engines.reason}); the ONNX files are ready. On a machine with "
                   "TensorRT >= 10 and a GPU:")
        for line in result.engines.commands:
            click.echo(f"  {line}")
        click.echo("  (TensorRT-RTX engines for RTX GPUs build here, without a GPU: --target rtx)")


def _check_option_combinations(target, caps, int8, fp16, calibrator, calib_dir, calib_json, fp16_block) -> None:
    if caps and target != "rtx":
        raise CliError("--compute-capability needs --target rtx")
    if (calib_dir or calib_json or calibrator != "entropy") and not int8:
        raise CliError("--calibrator, --calib-dir and --calib-json need --int8")
    if calib_json and (calib_dir or calibrator != "entropy"):
        raise CliError("--calib-json reuses recorded ranges: it excludes --calib-dir and --calibrator")
    if calib_dir and not Path(calib_dir).is_dir():
        raise CliError(f"calibration folder not found: {calib_dir}")
    if fp16_block is not None and not fp16:
        raise CliError("--fp16-keep-fp32 needs --fp16")


def register(group: click.Group) -> None:
    group.add_command(export_cmd)
