"""`agileir build`, `agileir validate`, `agileir bench`.

Exit codes as every command's (common.py); `agileir build` also prints the equivalent trtexec command when
TensorRT or a GPU is missing here (exit 3).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..runtime.artifacts import artifact_inputs
from .common import (EXIT_ENVIRONMENT, CheckFailed, CliError, backend_option, device_option,
                     friendly_errors, ov_precision_option, overwrite_option)
from .options import build_request_options


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise CliError(f"--sizes must be comma-separated positive integers, got {text!r}")
    return sizes


@click.command(name="build")
@build_request_options
@click.option("--print-trtexec", is_flag=True, help="only print the equivalent trtexec command")
@overwrite_option
@friendly_errors
def build_cmd(request, print_trtexec, overwrite):
    """Build a TensorRT (or TensorRT-RTX) engine from an exported ONNX (either form, any precision variant).

    --target rtx builds on this machine without a GPU (TensorRT for RTX: ahead of time, JIT on the RTX GPU)."""
    from ..deploy.build import build_from_request, claim_build
    from ..io.progress import Progress
    from ..runtime.tensorrt.env import TensorRTUnavailable

    if print_trtexec:
        if request.options.flavour == "rtx":
            raise CliError("--print-trtexec is for --target tensorrt (trtexec is TensorRT's tool)")
        click.echo(request.trtexec_line())
        return
    gate = claim_build(request, overwrite)
    command = request.trtexec_line()  # reads the graph: a missing or foreign ONNX fails here, in one line
    try:
        build_from_request(request, gate, progress=Progress.for_terminal(lambda m: click.echo(m, err=True)))
    except TensorRTUnavailable as e:
        click.echo(f"error: cannot build here: {e}", err=True)
        if command:
            click.echo(f"on a machine with TensorRT >= 10 and a GPU, the same engine (without engine.json) is:\n"
                       f"  {command}\n(or build a TensorRT-RTX engine here, no GPU needed: --target rtx)", err=True)
        raise click.exceptions.Exit(EXIT_ENVIRONMENT) from None


@click.command(name="validate")
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False),
              help="BasicSR-layout dataset (HR/ and LR_bicubic/X{scale}/)")
@click.option("--scale", required=True, type=click.IntRange(1))
@click.option("--reference", type=click.Path(dir_okay=False),
              help="FP32 reference: a checkpoint (PyTorch) or an FP32 .onnx (ONNX Runtime) [default: the checkpoint "
                   "recorded in the artifact; without PyTorch, model.onnx beside it]")
@click.option("--threshold", type=float, help="override the precision's threshold (dB)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the report as JSON")
@backend_option()
@overwrite_option
@device_option()
@friendly_errors
def validate_cmd(artifact, dataset, scale, reference, threshold, json_out, backend, overwrite, device):
    """Parity of ARTIFACT (checkpoint, .onnx, engine) with the PyTorch FP32 reference on a dataset.

    fp32: PSNR vs reference >= 60 dB on every image; fp16: >= 55 dB; int8: mean PSNR-Y vs HR within
    0.10 dB of the reference's. Exit code 1 when the check fails."""
    from dataclasses import replace

    from ..io.gate import OutputGate
    from ..io.outputs import input_files
    from ..runtime.artifacts import artifact_precision
    from ..runtime.validate import DEFAULT_CRITERIA, format_report, validate_artifact

    gate = OutputGate([*artifact_inputs(artifact), *input_files(reference, dataset)], overwrite)
    if json_out:
        gate.claim(json_out, "validation report", "--json")
    criterion = None
    if threshold is not None:
        criterion = replace(DEFAULT_CRITERIA[artifact_precision(artifact)], threshold=threshold)
    report = validate_artifact(artifact, dataset, scale, reference, backend, criterion,
                               progress=lambda r: click.echo(f"  {r['image']}: {r['psnr_vs_reference']:.2f} dB vs "
                                                             "reference", err=True), device=device)
    click.echo(f"{report.info['runner']} [{report.precision}, {report.info['backend']}] vs "
               f"{report.info['reference_description']} on {Path(dataset).name} x{scale}")
    if report.info["reference"]["matches_artifact"] is False:
        click.echo("warning: the reference is not the checkpoint recorded in the artifact", err=True)
    click.echo(format_report(report))
    if json_out:
        gate.write_json(json_out, report.to_dict(), "validation report")
        click.echo(f"wrote {json_out}")
    if not report.passed:
        raise CheckFailed(f"validation failed: {artifact} is below the {report.precision} threshold")


@click.command(name="bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="ARTIFACT...")
@click.option("--sizes", default="64,128,256", show_default=True, help="square input sizes (LR pixels)")
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0))
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0),
              help="CPU threads for ONNX Runtime / OpenVINO / PyTorch (0: their default)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the results as JSON")
@backend_option()
@ov_precision_option
@overwrite_option
@device_option()
@friendly_errors
def bench_cmd(artifacts, sizes, runs, warmup, batch, threads, json_out, backend, ov_precision, overwrite, device):
    """Latency (median, p90), throughput and peak memory per artifact (backend x precision) and input size."""
    from .. import runtime
    from ..io.gate import OutputGate
    from ..runtime.bench import bench_runners, format_rows, host_info

    gate = OutputGate(artifact_inputs(*artifacts), overwrite)
    if json_out:
        gate.claim(json_out, "benchmark report", "--json")
    size_list = _sizes(sizes)
    runners = {}
    try:  # several artifacts are measured interleaved (each round runs each once, rotated order)
        for artifact in artifacts:
            runner = runtime.load_runner(artifact, backend=backend, threads=threads, device=device, activate=False,
                                         ov_precision=ov_precision, echo=lambda m: click.echo(m, err=True))
            click.echo(f"benchmarking {runner.description} ({runner.backend}, {runner.precision}) ...", err=True)
            runners[str(artifact)] = runner
        rows = bench_runners(runners, size_list, runs, warmup, batch)
    finally:
        for runner in runners.values():
            runner.deactivate()
    click.echo(format_rows(rows))
    if json_out:
        payload = {"host": host_info(), "settings": {"sizes": size_list, "runs": runs, "warmup": warmup,
                                                     "batch": batch, "threads": threads, "backend": backend,
                                                     "device": device, "ov_precision": ov_precision},
                   "results": rows}
        gate.write_json(json_out, payload, "benchmark report")
        click.echo(f"wrote {json_out}")


def register(group: click.Group) -> None:
    for command in (build_cmd, validate_cmd, bench_cmd):
        group.add_command(command)
