"""Batch upscaling on Ray Data: decode and write as CPU tasks, inference in an actor pool.

    source (folder | glob | list file of paths/URIs)        agileir.cluster.inputs
      -> ray.data.from_items(items)                          one typed ImageItem per image (input, output)
      -> map(decode_task)                                    CPU task: resume check, fetch (pyarrow fs), decode
      -> map_batches(UpscaleActor, concurrency=N)            actor pool: one runner per actor, loaded once
      -> map(write_task)                                     CPU task: atomic PNG through the output gate
      -> manifest.json (atomic)                              agileir.cluster.manifest

Per image the work is agileir.upscale.stages' (decode -> plan -> infer -> write), the steps agileir-infer's
folder runs and the Python API take, with the same option objects: TilingOptions, PipelineOptions (`--batch`
images of one size per model call, `--fail-fast`) and the engine profile sized to the largest image
(stages.engine_max_side); so outputs are the same for the same runner. The memory budget (--max-memory, else
half of what a node has available) is shared by the actors of a node.

The manifest and every output are claimed in the run's output gate (agileir.io.gate.OutputGate) before any work:
a run that would replace an input, or an existing file agileir did not write (unless the gate overwrites), is
refused; the write tasks record each image they write, so a rerun may replace or skip them. Failures follow
stages.stops_run, as in folder runs: an unreadable file is recorded as failed and the job goes on (unless
--fail-fast); a model or write failure (a full disk: ENOSPC) would repeat for every image, so the job stops, the
manifest records what was done, and the error is raised.

Before anything is created (no output folder, no Ray instance) the manifest is claimed, the model probed, every
output planned and claimed, and a `--ray-address` cluster checked to be reachable (ClusterUnavailable, within
`connect_timeout_s`). SIGINT/SIGTERM stop the job: Ray is shut down and the temporary files of this run's outputs
removed, then the interrupt propagates. Ray is imported inside functions only.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..io.gate import OutputGate
from ..runtime import RunnerSpec
from ..upscale.options import PipelineOptions, TilingOptions
from ..upscale.stages import ImageItem, engine_max_side, stops_run
from .actors import ActorSetup, UpscaleActor, decode_task, pack, unpack, write_task
from .inputs import local_inputs, plan_outputs, resolve_inputs
from .manifest import MANIFEST_FORMAT, MANIFEST_KIND, BatchResult, recorded_hashes, write_manifest
from .session import check_cluster, check_gpus, check_local_cpus, local_ray_cpus, ray_session


@dataclass(frozen=True)
class BatchOptions:
    """How a batch job runs on Ray: `actors` inference actors of `cpus_per_actor` CPUs (also their ONNX Runtime
    threads) and `gpus_per_actor` GPUs (None: 1 for TensorRT engines, else 0); the manifest path (None:
    OUTPUT/manifest.json); `resume` skips complete outputs; `address` of a running cluster (None: a local
    instance of `num_cpus` CPUs, None: session.local_ray_cpus), given `connect_timeout_s` to accept a connection."""

    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    manifest: str | None = None
    resume: bool = True
    address: str | None = None
    num_cpus: int | None = None
    connect_timeout_s: float = 20.0


def run_batch(spec: RunnerSpec, source: str, out_dir: str | Path, tiling: TilingOptions | None = None,
              options: BatchOptions | None = None, gate: OutputGate | None = None,
              echo: Callable[[str], Any] = print, pipeline: PipelineOptions | None = None) -> BatchResult:
    """Upscale every image of `source` into `out_dir` with the runner `spec` describes, on Ray Data; writes the
    manifest, returns the result. `gate`: the run's output gate, the model files among its inputs (None: a gate
    of this call with the model file, without overwrite); the local inputs are added to it, and the manifest
    (before the model loads) and every output are claimed in it before anything is created, the cluster's
    address checked too; every file written is recorded in it. Raises OutputConflict, ClusterUnavailable,
    OSError / ValueError when a failure stopped the run (stages.stops_run; the manifest holds what was done),
    KeyboardInterrupt (Ray shut down, no temporary file left)."""
    tiling, options, pipeline = tiling or TilingOptions(), options or BatchOptions(), pipeline or PipelineOptions()
    out_dir = Path(out_dir)
    inputs = resolve_inputs(source)
    if gate is None:  # the model, and a list file the inputs come from
        gate = OutputGate([spec.artifact, *(p for p in local_inputs([source]) if p.is_file())])
    gate.add_inputs(*local_inputs(inputs))
    manifest = gate.claim(options.manifest or out_dir / "manifest.json", MANIFEST_KIND, "--manifest")
    setup = ActorSetup(spec, tiling, pipeline, engine_max_side(spec.backend, local_inputs(inputs)), options.actors,
                       options.cpus_per_actor)
    probe = setup.load_runner(activate=False)
    gpus = options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if probe.backend in ("tensorrt", "rtx") else 0.0  # an engine of either flavour needs a GPU
    setup = replace(setup, gpus_per_actor=gpus)
    outputs = plan_outputs(inputs, out_dir, probe.scale, gate)
    header = {"format": MANIFEST_FORMAT, "model": spec.artifact, "backend": probe.backend, "scale": probe.scale,
              "tile": tiling.tile_text, "tile_overlap": tiling.overlap, "max_memory": tiling.max_memory,
              "actors": options.actors, "batch": pipeline.batch, "source": source, "output": str(out_dir)}
    hashes = recorded_hashes(manifest, header) if options.resume else {}
    items = [ImageItem(src, dst, sha256=hashes.get(os.path.abspath(dst))) for src, dst in zip(inputs, outputs)]
    if not options.address:
        check_local_cpus(options.actors, options.cpus_per_actor, options.num_cpus)
    check_cluster(options.address, options.connect_timeout_s)
    echo(f"model: {probe.description} via {probe.backend}, x{probe.scale}; {len(items)} images, {options.actors} "
         f"actor(s) ({options.cpus_per_actor:g} CPU{', %g GPU' % gpus if gpus else ''} each)")

    start = time.perf_counter()
    with ray_session(options.address, local_ray_cpus(options.actors, options.cpus_per_actor, options.num_cpus),
                     outputs):
        if not options.address and gpus:  # a cluster may add nodes on demand: not checked
            check_gpus(gpus)
        out_dir.mkdir(parents=True, exist_ok=True)
        done, stopper = _run_dataset(items, setup, options, gate)
    seconds = time.perf_counter() - start
    if stopper is None:
        return write_manifest(done, seconds, manifest, header, gate)
    try:  # what was done, so that a rerun (after freeing space) resumes
        write_manifest(done, seconds, manifest, header, gate)
    except OSError:
        pass
    raise _stopped(stopper, len(done), len(items), manifest)


def _run_dataset(items: list[ImageItem], setup: ActorSetup, options: BatchOptions,
                 gate: OutputGate) -> tuple[list[ImageItem], ImageItem | None]:
    """The Ray Data job, its write tasks writing through `gate` (every output claimed in it); returns its items
    in input order, and the item whose failure stopped it (stages.stops_run), if one did."""
    import ray

    ds: Any = ray.data.from_items([pack(item) for item in items], override_num_blocks=min(len(items), 200))
    ds = ds.map(decode_task, fn_kwargs={"resume": options.resume, "pipeline": setup.pipeline}, num_cpus=0.5)
    pool = ray.data.ActorPoolStrategy(size=options.actors)  # Ray >= 2.51's spelling of concurrency=actors
    ds = ds.map_batches(UpscaleActor, fn_constructor_kwargs={"setup": setup}, compute=pool,
                        batch_size=setup.pipeline.batch, num_cpus=options.cpus_per_actor,
                        num_gpus=setup.gpus_per_actor or None, batch_format="numpy")
    ds = ds.map(write_task, fn_kwargs={"gate": gate, "pipeline": setup.pipeline}, num_cpus=0.5)
    order = {str(item.source): i for i, item in enumerate(items)}
    done, stopper = [], None
    for row in ds.iter_rows():
        item = unpack(row)
        done.append(item)
        if stops_run(item):
            stopper = item
            break
    return sorted(done, key=lambda i: order[str(i.source)]), stopper


def _stopped(item: ImageItem, done: int, total: int, manifest: Path) -> Exception:
    """The error a stopped run raises: an OSError keeps its code (ENOSPC: exit 2 as a full disk everywhere)."""
    where = f"the run stopped after {done} of {total} images (see {manifest})"
    if item.errno == errno.ENOSPC:
        return OSError(errno.ENOSPC, f"No space left on device writing {item.output} (the output of {item.source}): "
                                    f"{where}")
    if item.errno:
        return OSError(item.errno, f"{item.source}: {item.error}; {where}")
    return ValueError(f"{item.source}: {item.error}; {where}")


__all__ = ["BatchOptions", "run_batch"]
