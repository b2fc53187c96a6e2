"""The Ray Data steps of a batch job, each the agileir.upscale.stages step on a typed item.

Every row of the job is one pickled agileir.upscale.stages.ImageItem (column ROW):

    decode_task(row)           CPU task: resume check (the recorded sha256), then stages.decode (local or a URI)
    UpscaleActor(setup)(rows)  actor: stages.plan + stages.infer, same-size images `batch` per model call
    write_task(row, gate)      CPU task: stages.write through the run's output gate, then the output's sha256

A failing step is recorded on the item (stages.fail); the job applies stages.stops_run, the failure policy of
every image run. Each actor loads its runner once, with the engine profile the job sized (ActorSetup.max_side)
and a memory budget shared with the other actors of its node (session.actors_per_node).
"""
from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any

from ..io.gate import OutputGate, file_sha256
from ..io.outputs import OutputFolder
from ..runtime import RunnerSpec
from ..upscale import stages
from ..upscale.options import PipelineOptions, TilingOptions
from ..upscale.stages import ImageItem
from ..upscale.upscaler import Upscaler
from ..upscale.writing import RunOutputs
from .inputs import read_source
from .manifest import output_is_complete
from .session import actors_per_node, this_node_resources

ROW = "item"


def pack(item: ImageItem) -> dict:
    return {ROW: pickle.dumps(item)}


def unpack(row: dict) -> ImageItem:
    return pickle.loads(row[ROW])


@dataclass(frozen=True)
class ActorSetup:
    """What every inference actor is made of (plain data: it travels to the actors). `max_side`: the engine
    profile's largest side (stages.engine_max_side; None: the runtime's default); `actors`, `cpus_per_actor`,
    `gpus_per_actor`: the pool, which sets how many actors share a node's memory budget."""

    spec: RunnerSpec
    tiling: TilingOptions
    pipeline: PipelineOptions
    max_side: int | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0

    def load_runner(self, activate: bool = True) -> Any:
        """The runner of this job, the probe of the driver and every actor's alike (one engine profile)."""
        from ..runtime import load_runner

        return load_runner(self.spec, max_side=self.max_side, batch=self.pipeline.batch, echo=lambda _: None,
                           activate=activate)

    def sharers(self) -> int:
        cpus, gpus = this_node_resources()
        return actors_per_node(self.actors, self.cpus_per_actor, cpus, self.gpus_per_actor, gpus)


def decode_task(row: dict, resume: bool = True, pipeline: PipelineOptions | None = None) -> dict:
    """Keep an output whose bytes match the sha256 the item carries from the last manifest (item.reused), else
    decode the input."""
    start = time.perf_counter()
    item = unpack(row)
    recorded, item.sha256 = item.sha256, None
    if resume and output_is_complete(item.output, recorded):
        item.reused, item.sha256 = True, recorded
    else:
        try:
            stages.decode(item, read_source)
        except Exception as e:
            stages.fail(item, stages.DECODE, e, pipeline)
    item.seconds += time.perf_counter() - start
    return pack(item)


def upscale_items(upscaler: Upscaler, items: list[ImageItem], pipeline: PipelineOptions) -> list[ImageItem]:
    """Plan and infer the decoded items (same-size runs of up to `pipeline.batch` per model call; a failing call
    is retried one item at a time, so only the bad item fails)."""
    planned = []
    for item in items:
        if item.image is None:
            continue
        try:
            planned.append(stages.plan(upscaler, item, share=pipeline.batch))
        except Exception as e:
            stages.fail(item, stages.PLAN, e, pipeline)
    for group in stages.same_size_runs(planned, pipeline.batch):
        start = time.perf_counter()
        _infer(upscaler, group, pipeline)
        for item in group:
            item.seconds += (time.perf_counter() - start) / len(group)
    return items


def _infer(upscaler: Upscaler, group: list[ImageItem], pipeline: PipelineOptions) -> None:
    try:
        stages.infer(upscaler, group)
    except Exception as e:
        if len(group) == 1:
            stages.fail(group[0], stages.INFER, e, pipeline)
            return
        for item in group:
            _infer(upscaler, [item], pipeline)


class UpscaleActor:
    """The actor of the inference pool: one runner, loaded once in __init__ (ActorSetup.load_runner), applied by
    an Upscaler (the tiling rules of agileir-infer, its node's share of the memory budget) to every item."""

    def __init__(self, setup: ActorSetup) -> None:
        self.pipeline = setup.pipeline
        self.upscaler = Upscaler(setup.load_runner(), setup.tiling, setup.sharers())

    def __call__(self, batch: dict) -> dict:
        items = [pickle.loads(payload) for payload in batch[ROW]]
        upscale_items(self.upscaler, items, self.pipeline)
        return {ROW: [pickle.dumps(item) for item in items]}


def write_task(row: dict, gate: OutputGate, pipeline: PipelineOptions | None = None) -> dict:
    """Write an upscaled item as an atomic PNG through `gate` (the run's, the output claimed in it), and hash it."""
    start = time.perf_counter()
    item = unpack(row)
    if item.result is not None:
        try:
            stages.write(item, RunOutputs(gate, OutputFolder(item.output.parent)))
            item.sha256 = file_sha256(item.output)
        except Exception as e:
            stages.fail(item, stages.WRITE, e, pipeline)
    item.result = None
    item.seconds += time.perf_counter() - start
    return pack(item)


__all__ = ["ActorSetup", "ROW", "UpscaleActor", "decode_task", "pack", "unpack", "upscale_items", "write_task"]
