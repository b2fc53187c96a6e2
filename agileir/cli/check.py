"""`agileir check --trt TARGET model.onnx`: which ops, opsets and attributes of an ONNX file the ONNX parser of a
TensorRT release (or JetPack target) cannot import (agileir.export.trt_compat). Exit 1 when any."""
from __future__ import annotations

from pathlib import Path

import click

from .common import CheckFailed, CliError, friendly_errors, overwrite_option


@click.command(name="check")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="MODEL.onnx...")
@click.option("--trt", "targets", multiple=True, required=True,
              help="TensorRT version (8.5, 8.6.2, 10.3, 10.14, ...) or target (jetpack5, jetpack6.0, jetpack6, "
                   "trt10, rtx, latest); repeat for several")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="write the findings as JSON")
@overwrite_option
@friendly_errors
def check_cmd(models, targets, json_out, overwrite):
    """Can TensorRT's ONNX parser of a release import MODEL.onnx? One line per finding; exit 1 when any."""
    from ..export.trt_compat import check_files, release_of
    from ..io.gate import OutputGate

    try:
        for t in targets:
            release_of(t)
    except ValueError as e:
        raise CliError(str(e)) from None
    for m in models:
        if not Path(m).is_file():
            raise CliError(f"ONNX file not found: {m}")
    gate = OutputGate(list(models), overwrite)
    if json_out:
        gate.claim(json_out, "compatibility report", "--json")
    from google.protobuf.message import DecodeError

    try:
        reports = check_files(list(models), list(targets))
    except (DecodeError, OSError, ValueError) as e:  # not an ONNX file
        raise CliError(f"cannot read an ONNX model: {e}".splitlines()[0]) from None
    failed = 0
    for r in reports:
        state = "ok" if r["ok"] else f"{len(r['findings'])} finding(s)"
        click.echo(f"{r['file']} vs {r['parser']} ({r['target']}): {state}")
        for f in r["findings"]:
            click.echo(f"  {f['message']}")
        for note in r["notes"]:
            click.echo(f"  note: {note}")
        failed += not r["ok"]
    if json_out:
        gate.write_json(json_out, {"reports": reports}, "compatibility report")
        click.echo(f"wrote {json_out}")
    if failed:
        raise CheckFailed(f"{failed} of {len(reports)} file/target pair(s) would not parse")


def register(group: click.Group) -> None:
    group.add_command(check_cmd)
