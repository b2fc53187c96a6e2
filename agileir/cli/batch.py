"""`agileir batch`: upscale a folder, a glob or a list of paths/URIs on Ray Data (local or a cluster)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..runtime.artifacts import artifact_inputs
from .common import CheckFailed, MissingDependency, friendly_errors, overwrite_option, require_module, runner_options
from .options import pipeline_options, tiling_options


def _batch_options(fn):
    """The Ray options of `agileir batch` -> `options` (agileir.cluster.job.BatchOptions)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, ray_address, actors, cpus_per_actor, gpus_per_actor, num_cpus, manifest, no_resume, **kwargs):
        from ..cluster.job import BatchOptions

        kwargs["options"] = BatchOptions(actors, cpus_per_actor, gpus_per_actor, manifest, not no_resume, ray_address,
                                         num_cpus)
        return fn(*args, **kwargs)

    for option in reversed([
        click.option("--ray-address", help="a running Ray cluster (e.g. 'auto' or 'ray://head:10001'); "
                     "default: start a local instance"),
        click.option("--actors", default=1, show_default=True, type=click.IntRange(1),
                     help="inference actors (each loads the model once; TensorRT engines: one GPU each)"),
        click.option("--cpus-per-actor", default=1.0, show_default=True, type=click.FloatRange(0.1),
                     help="CPUs each inference actor reserves (also its ONNX Runtime thread count)"),
        click.option("--gpus-per-actor", type=click.FloatRange(0), help="default: 1 for TensorRT engines, else 0"),
        click.option("--num-cpus", type=click.IntRange(1), help="CPUs of the local Ray instance (default: bounded, "
                     "actors' share + 1, at most 8 unless more are needed)"),
        click.option("--manifest", type=click.Path(dir_okay=False), help="default: OUTPUT/manifest.json"),
        click.option("--no-resume", is_flag=True, help="redo outputs that already exist"),
    ]):
        wrapper = option(wrapper)
    return wrapper


@click.command(name="batch")
@click.argument("model")
@click.argument("input_", metavar="INPUT")
@click.argument("output", metavar="OUTPUT")
@_batch_options
@tiling_options
@pipeline_options("images of one size per model call (the memory budget is shared by the batch)")
@runner_options()
@overwrite_option
@friendly_errors
def batch_cmd(model, input_, output, options, tiling, pipeline, runner, overwrite):
    """Upscale every image of INPUT (folder, glob, or a .txt/.lst/.list file of paths/URIs) into the folder
    OUTPUT with MODEL, as `agileir-infer` would (the same per-image steps, tiling and memory budget, engine
    profile, names and failure policy; every output checked against every input before any work), on Ray Data.
    The memory budget is shared by the actors of a node. A rerun skips or replaces the files it wrote; an
    existing file agileir did not write is refused unless --overwrite. An unreadable file is reported and skipped
    (exit 1 at the end; --fail-fast: exit 2 at once); a model or write failure stops the run. Exit codes: 1 an
    image failed (see the manifest), 2 bad input, an output refused, a stopped run or a full disk, 3 a missing
    package or an unreachable --ray-address, 130/143 interrupted (Ray shut down, no partial file)."""
    require_module("ray.data", "batch", "agileir batch", "ray[data]")
    from ..cluster import job
    from ..cluster.inputs import source_files
    from ..cluster.session import ClusterUnavailable
    from ..io.gate import OutputGate

    manifest = Path(options.manifest) if options.manifest else Path(output) / "manifest.json"
    gate = OutputGate([*artifact_inputs(model), *source_files(input_)], overwrite)
    spec = replace(runner, artifact=model, threads=max(1, int(options.cpus_per_actor)))
    try:  # run_batch claims the manifest and every image in `gate` before any work, and records what it writes
        result = job.run_batch(spec, input_, output, tiling, replace(options, manifest=str(manifest)), gate,
                               echo=lambda s: click.echo(s, err=True), pipeline=pipeline)
    except ClusterUnavailable as e:
        raise MissingDependency(str(e)) from None
    for item in result.items:
        for note in item.notes:
            click.echo(note, err=True)
        if item.status == "failed":
            click.echo(f"failed: {item.source}: {item.error}", err=True)
    click.echo(result.summary())
    if result.failed:
        raise CheckFailed(f"{result.failed} image(s) failed (see {result.manifest})")


def register(group: click.Group) -> None:
    group.add_command(batch_cmd)
