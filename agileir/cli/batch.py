"""`agileir batch`: upscale a folder, a glob or a list of paths/URIs on Ray Data (local or a cluster)."""
from __future__ import annotations

import click

from .common import EXIT_FAILED, backend_option, friendly_errors, model_options, require_module


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
@friendly_errors
def batch_cmd(model, input_, output, ray_address, actors, cpus_per_actor, gpus_per_actor, num_cpus, tile,
              tile_overlap, manifest, no_resume, backend, preset_name, upstream_compat):
    """Upscale every image of INPUT (folder, glob, or a .txt list of paths/URIs) into the folder OUTPUT with
    MODEL, as `agileir-infer` would, on Ray Data. Exit code 1 when an image failed (see the manifest)."""
    require_module("ray.data", "batch", "agileir batch", "ray[data]")
    from ..cluster.ray_batch import RunnerSpec, run_batch

    spec = RunnerSpec(model, backend, preset_name, upstream_compat, threads=max(1, int(cpus_per_actor)),
                      tile=tile, tile_overlap=tile_overlap)
    result = run_batch(spec, input_, output, actors=actors, cpus_per_actor=cpus_per_actor,
                       gpus_per_actor=gpus_per_actor, manifest=manifest, resume=not no_resume,
                       address=ray_address, num_cpus=num_cpus, echo=lambda s: click.echo(s, err=True))
    for item in result.items:
        if item["status"] == "failed":
            click.echo(f"failed: {item['input']}: {item['error']}", err=True)
    click.echo(result.summary())
    return EXIT_FAILED if result.failed else 0


def register(group: click.Group) -> None:
    group.add_command(batch_cmd)
