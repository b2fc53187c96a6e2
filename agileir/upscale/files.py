"""Image and folder runs on the staged pipeline, each image through agileir.upscale.stages
(decode -> plan tiles -> infer, batched by size -> write).

    upscaler = Upscaler(runner, TilingOptions())
    plan = folder_outputs(images, out_dir, upscaler.scale)          # agileir.io.outputs: the names
    outputs = RunOutputs(OutputGate([model, *images], overwrite), OutputFolder(out_dir))
    for src, dst in plan.items():                                   # agileir.io.gate: claimed before any work
        outputs.gate.claim(dst, IMAGE, f"output of {src}")
    result = upscale_files(upscaler, plan, PipelineOptions(batch=4), outputs, on_item=print)
    item = upscale_file(upscaler, src, dst)                         # one image (this thread): failures raised

Without `outputs` a call makes a gate of its own (RunOutputs.claimed: the sources its inputs, no --overwrite).

Each output equals the serial loop's (`read_image` -> `Upscaler.upscale_image` -> `write_image`); with batch > 1
the model sees a (B, 3, h, w) batch, so floating-point results may differ from batch 1 in the last bits (tested:
at most one 8-bit level). The tiling of each image is planned in the decode stage (agileir.upscale.memory, the
budget shared by the `batch` images of one call); images batched together have one size, so one plan.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ..io.atomic import sweep_stale
from ..io.outputs import OutputFolder
from . import stages
from .options import PipelineOptions
from .pipeline import ItemResult, run_pipeline
from .stages import ImageItem
from .upscaler import Upscaler
from .writing import IMAGE, RunOutputs


@dataclass
class FilesResult:
    items: list[ImageItem]

    @property
    def written(self) -> list[Path]:
        return [item.output for item in self.items if item.ok]

    @property
    def failed(self) -> list[ImageItem]:
        return [item for item in self.items if not item.ok]


def _item(r: ItemResult, plan: Mapping[Path, Path], options: PipelineOptions,
          started: dict[Path, ImageItem]) -> ImageItem:
    """The item of a pipeline result: the encode stage's when it got there, else the one decode started."""
    if r.ok:
        return r.value
    item = started.get(r.item) or ImageItem(r.item, plan[r.item])
    return stages.fail(item, r.stage or stages.DECODE, r.exception or ValueError(r.error), options)


def upscale_files(upscaler: Upscaler, plan: Mapping[Path, Path], options: PipelineOptions | None = None,
                  outputs: RunOutputs | None = None,
                  on_item: Callable[[ImageItem], None] | None = None) -> FilesResult:
    """Upscale every source of `plan` (source -> output path, in the order to report) into its output.

    Decode, model and PNG encode overlap (agileir.upscale.pipeline); `on_item` sees each ImageItem in input
    order as it completes. The failure policy is agileir.upscale.stages.stops_run: a file that cannot be read is
    skipped (item.skipped) unless `options.fail_fast`; a failure of the model or the write would repeat for
    every file, so it ends the run: the item is reported, then its exception raised. `outputs`: the run's gate,
    every output of `plan` claimed in it (None: a gate of this call, RunOutputs.claimed), each written file
    recorded; its folder (agileir.io.outputs.OutputFolder) is created with the first file written, swept of
    stale temporary files first, and removed again if nothing was written."""
    options = options or PipelineOptions()
    outputs = outputs if outputs is not None else RunOutputs.claimed(plan.items(), IMAGE)
    folder = outputs.folder
    started: dict[Path, ImageItem] = {}  # filled by the decode threads (notes of an item that fails later)

    def decode(src: Path) -> ImageItem:
        item = started[src] = ImageItem(src, plan[src])
        return stages.plan(upscaler, stages.decode(item), share=options.batch)

    if folder is not None and folder.path.is_dir():
        sweep_stale(folder.path)
    items: list[ImageItem] = []
    pipe: Any = iter(run_pipeline(list(plan), decode, lambda group: stages.infer(upscaler, group),
                                  lambda item: stages.write(item, outputs), options, batch_key=lambda i: i.size))
    try:
        for r in pipe:
            item = _item(r, plan, options, started)
            started.pop(r.item, None)
            if on_item is not None:
                on_item(item)
            item.result = None
            items.append(item)
            if stages.stops_run(item):
                raise r.exception if r.exception is not None else ValueError(r.error)
    finally:
        pipe.close()  # every worker has finished: nothing is written after this
        if folder is not None:
            folder.discard_if_unused()
    return FilesResult(items)


def upscale_file(upscaler: Upscaler, src: Path, dst: Path, outputs: RunOutputs | None = None,
                 on_item: Callable[[ImageItem], None] | None = None) -> ImageItem:
    """One image, the steps of a folder run in this thread (so SIGINT/SIGTERM interrupt the write itself and no
    output is left); any failure, an unreadable file too, is raised. `outputs`: the run's gate with `dst`
    claimed (None: a gate of this call, RunOutputs.claimed); its folder, default dst's parent, is created on the
    write and removed again if the run fails."""
    src, dst = Path(src), Path(dst)
    outputs = outputs if outputs is not None else RunOutputs.claimed([(src, dst)], IMAGE)
    folder = outputs.folder if outputs.folder is not None else OutputFolder(dst.parent)
    if folder.path.is_dir():
        sweep_stale(folder.path)
    try:
        item = stages.plan(upscaler, stages.decode(ImageItem(src, dst)))
        stages.write(stages.infer(upscaler, [item])[0], replace(outputs, folder=folder))
    finally:
        folder.discard_if_unused()
    if on_item is not None:
        on_item(item)
    item.result = None
    return item


def find_hr(hr_dir: Path, lr_path: Path, scale: int) -> Path | None:
    """HR counterpart of an LR file: same stem, or the stem without BasicSR's 'x{scale}' suffix."""
    stems = [lr_path.stem]
    if lr_path.stem.endswith(f"x{scale}"):
        stems.append(lr_path.stem[: -len(f"x{scale}")])
    for stem in stems:
        for candidate in sorted(hr_dir.glob(f"{stem}.*")):
            if candidate.is_file():
                return candidate
    return None


__all__ = ["FilesResult", "ImageItem", "find_hr", "upscale_file", "upscale_files"]
