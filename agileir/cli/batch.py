"""`agileir batch`: upscale a folder, a glob or a list of paths/URIs on Ray Data (local or a cluster)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (EXIT_FAILED, CliError, artifact_inputs, backend_option, friendly_errors, is_disk_full,
                     model_options, overwrite_option, require_module)


@click.command(name="batch")
@click.argument("model")
@click.argument("input_", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@click.option("--ray-address", help="a running Ray cluster (e.g. 'auto' or 'ray://head:10001'); "
              "default: start a local instance")
@click.option("--actors", default=1, show_default=True, type=click.IntRange(1),
              help="inference actors (each loads the model once; TensorRT engines: one GPU each)")
@click.option("--cpus-per-actor", default=1.0, show_default=True, type=click.FloatRange(0.1),
              help="CPUs each inference actor reserves (also its ONNX Runtime thread count)")
@click.option("--gpus-per-actor", type=click.FloatRange(0), help="default: 1 for TensorRT engines, else 0")
@click.option("--num-cpus", type=click.IntRange(1), help="CPUs of the local Ray instance (default: bounded, "
              "actors' share + 1, at most 8 unless more are needed)")
@click.option("--tile", default=0, show_default=True, help="tile size in input pixels (0: whole image)")
@click.option("--tile-overlap", default=16, show_default=True, help="tile overlap in input pixels")
@click.option("--manifest", type=click.Path(dir_okay=False), help="default: OUTPUT/manifest.json")
@click.option("--no-resume", is_flag=True, help="redo outputs that already exist")
@backend_option("override the backend chosen from the model file type")
@model_options
@overwrite_option
@friendly_errors
def batch_cmd(model, input_, output, ray_address, actors, cpus_per_actor, gpus_per_actor, num_cpus, tile,
              tile_overlap, manifest, no_resume, backend, preset_name, upstream_compat, overwrite):
    """Upscale every image of INPUT (folder, glob, or a .txt list of paths/URIs) into the folder OUTPUT with
    MODEL, as `agileir-infer` would, on Ray Data. Exit code 1 when an image failed (see the manifest)."""
    require_module("ray.data", "batch", "agileir batch", "ray[data]")
    from ..cluster.ray_batch import RunnerSpec, run_batch
    from ..io.gate import OutputGate

    manifest = Path(manifest) if manifest else Path(output) / "manifest.json"
    gate = OutputGate([*artifact_inputs(model), *_local_inputs(input_)], overwrite)
    gate.claim(manifest, "batch manifest", "--manifest")

    spec = RunnerSpec(model, backend, preset_name, upstream_compat, threads=max(1, int(cpus_per_actor)),
                      tile=tile, tile_overlap=tile_overlap)
    result = run_batch(spec, input_, output, actors=actors, cpus_per_actor=cpus_per_actor,
                       gpus_per_actor=gpus_per_actor, manifest=manifest, resume=not no_resume,
                       address=ray_address, num_cpus=num_cpus, echo=lambda s: click.echo(s, err=True))
    gate.record(manifest, "batch manifest")
    for item in result.items:
        if item["status"] == "failed":
            click.echo(f"failed: {item['input']}: {item['error']}", err=True)
    click.echo(result.summary())
    disk_full = next((item for item in result.items
                      if item["status"] == "failed" and is_disk_full(item["error"] or "")), None)
    if disk_full is not None:  # the machine's problem, not a bad file: exit 2 as in every command
        raise CliError(f"{disk_full['error']} (writing the output of {disk_full['input']}; see {manifest})")
    return EXIT_FAILED if result.failed else 0


def _local_inputs(source: str) -> list[Path]:
    """Local files of INPUT (a folder, a glob, or a .txt list and the local paths it lists)."""
    import glob

    from ..io.outputs import input_files

    path = Path(source)
    found = input_files(path) if path.exists() else [Path(p) for p in glob.glob(source)]
    if path.is_file() and path.suffix == ".txt":
        lines = path.read_text(errors="replace").splitlines()
        found += [Path(line.strip()) for line in lines if line.strip() and Path(line.strip()).is_file()]
    return found


def register(group: click.Group) -> None:
    group.add_command(batch_cmd)
