"""`agileir calibrate`: every precision x calibrator, other tools' INT8 and other bit widths, evaluated in
ONNX Runtime CPU, with a report."""
from __future__ import annotations

from pathlib import Path

import click

from ..calibration import CALIBRATORS, PEERS
from ..export.forms import FORMS
from .common import CliError, friendly_errors, model_options, overwrite_option, require_module

PEER_CHOICES = (*PEERS, "none")


@click.command(name="calibrate")
@click.argument("model", required=False)
@click.option("--eval", "eval_dirs", multiple=True, required=True, type=click.Path(file_okay=False),
              help="BasicSR-layout benchmark (HR/ and LR_bicubic/X{scale}/); repeat for several")
@click.option("--scale", type=click.IntRange(1), help="defaults to the model's scale")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="calibration_report",
              show_default=True, help="output folder")
@click.option("--calibrator", "calibrators", multiple=True, type=click.Choice(CALIBRATORS),
              help="INT8 calibrators to compare (repeatable) [default: all]")
@click.option("--calib-dir", type=click.Path(file_okay=False), help="LR calibration images [default: bundled set]")
@click.option("--form", type=click.Choice(list(FORMS)), default="standard", show_default=True,
              help="export form evaluated (the INT8 ranges always come from the standard form)")
@click.option("--peer", "peers", multiple=True, type=click.Choice(PEER_CHOICES),
              help="other tools' INT8 of the same graph (repeatable; 'none' for none) [default: all]; "
                   "modelopt-int8 runs where `modelopt` imports or in $AGILEIR_MODELOPT_PYTHON")
@click.option("--no-sweep", is_flag=True, help="leave out the W6A6 / W4A4 / W8 / W4 rows")
@click.option("--no-attention", is_flag=True, help="leave out the row with INT8 attention products")
@click.option("--no-fp16", is_flag=True, help="leave out the FP16 variant")
@click.option("--fp16-study", is_flag=True,
              help="also measure FP16 vs FP32 output blocking each op type (slow: ~20 graph sessions)")
@click.option("--threads", default=0, show_default=True, help="ONNX Runtime CPU threads for evaluation (0: all)")
@click.option("--max-memory", help="memory a peer's calibration may take, e.g. 6G; a peer estimated over it is a "
                                   "skipped row [default: half of available memory]")
@model_options
@overwrite_option
@friendly_errors
def calibrate_cmd(model, eval_dirs, scale, out_dir, calibrators, calib_dir, form, peers, no_sweep, no_attention,
                  no_fp16, fp16_study, threads, max_memory, preset_name, upstream_compat, overwrite):
    """Calibrate MODEL (default: bundled AgileIR-light x4) with each INT8 calibrator, quantize it with other
    tools (ONNX Runtime quantize_static, NVIDIA ModelOpt) and at other bit widths, evaluate every variant
    on --eval sets, and write calibration_report.{json,md,png} beside published SwinIR-light low-bit PTQ
    results. Any AgileIR or SwinIR checkpoint is accepted."""
    from tqdm import tqdm

    from ..calibration.study import ReportOptions, calibration_report
    from ..io.gate import OutputGate
    from ..io.outputs import input_files
    from ..models.load import default_checkpoint

    for module, extra in (("matplotlib", "plot"), ("onnxconverter_common", "onnx")):
        require_module(module, extra, "agileir calibrate")
    options = ReportOptions([Path(d) for d in eval_dirs], Path(out_dir), scale, tuple(calibrators) or CALIBRATORS,
                            Path(calib_dir) if calib_dir else None, form, not no_fp16, fp16_study, threads,
                            tuple(p for p in (peers or PEER_CHOICES) if p != "none"), not no_sweep,
                            not no_attention)
    if max_memory:
        from ..upscale.memory import parse_size

        try:
            options.memory_budget = parse_size(max_memory)
        except ValueError as e:
            raise CliError(str(e)) from None
    gate = OutputGate([Path(model) if model else default_checkpoint(), *input_files(*eval_dirs, calib_dir)], overwrite)
    planned = gate.claim_all(options.planned_outputs(), "calibration report")
    from ..runtime.pytorch import load_checked_model  # imports torch: after the cheap checks and claims

    loaded = load_checked_model(model, preset_name, upstream_compat)
    with gate.publishing():  # each report's ledger line durable before it is renamed into place
        report, paths = calibration_report(loaded, options, lambda total, desc: tqdm(total=total, desc=desc,
                                                                                     unit="step"),
                                           lambda line: click.echo(line, err=True))
    for path in planned:
        if path.is_file():
            gate.record(path, "calibration report")
    for v in report["variants"]:
        cells = "  ".join(f"{n} {d['psnr']:.2f} dB / {d['ssim']:.4f} ({d['delta_psnr']:+.2f})"
                          for n, d in v["datasets"].items()) or f"skipped: {v.get('skipped')}"
        click.echo(f"{v['name']:<24}{v['bits']:<8}{cells}")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def register(group: click.Group) -> None:
    group.add_command(calibrate_cmd)
