"""`agileir calibrate`: every precision x calibrator, other tools' INT8 and other bit widths, evaluated in
ONNX Runtime CPU, with a report."""
from __future__ import annotations

import click

from .common import friendly_errors, overwrite_option, require_module
from .options import calibrate_request_options


@click.command(name="calibrate")
@calibrate_request_options
@overwrite_option
@friendly_errors
def calibrate_cmd(request, overwrite):
    """Calibrate MODEL (default: bundled AgileIR-light x4) with each INT8 calibrator, quantize it with other
    tools (ONNX Runtime quantize_static, NVIDIA ModelOpt) and at other bit widths, evaluate every variant
    on --eval sets, and write calibration_report.{json,md,png} beside published SwinIR-light low-bit PTQ
    results. Any AgileIR or SwinIR checkpoint is accepted."""
    from ..deploy.calibrate import calibrate_checkpoint, claim_calibration
    from ..io.progress import Progress

    for module, extra in (("matplotlib", "plot"), ("onnxconverter_common", "onnx")):
        require_module(module, extra, "agileir calibrate")
    gate = claim_calibration(request, overwrite)  # before the model loads (PyTorch): the cheap checks first
    report, paths = calibrate_checkpoint(request, gate, Progress.for_terminal(lambda line: click.echo(line, err=True)))
    for v in report["variants"]:
        cells = "  ".join(f"{n} {d['psnr']:.2f} dB / {d['ssim']:.4f} ({d['delta_psnr']:+.2f})"
                          for n, d in v["datasets"].items()) or f"skipped: {v.get('skipped')}"
        click.echo(f"{v['name']:<24}{v['bits']:<8}{cells}")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def register(group: click.Group) -> None:
    group.add_command(calibrate_cmd)
