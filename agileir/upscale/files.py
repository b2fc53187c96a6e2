"""Image and folder runs on the staged pipeline: read_image -> plan tiles -> upscale (batched by size) -> write.

    upscaler = Upscaler(runner, TilingOptions())
    plan = folder_outputs(images, out_dir, upscaler.scale)          # agileir.io.outputs: names, checked first
    result = upscale_files(upscaler, plan, PipelineOptions(batch=4), OutputFolder(out_dir), on_item=print)
    item = upscale_file(upscaler, src, dst)                         # one image (this thread): failures raised

Each output equals the serial loop's (`read_image` -> `Upscaler.upscale_image` -> `write_image`); with batch > 1
the model sees a (B, 3, h, w) batch, so floating-point results may differ from batch 1 in the last bits (tested:
at most one 8-bit level). The tiling of each image is planned in the decode stage (agileir.upscale.memory, the
budget shared by the `batch` images of one call); images batched together have one size, so one plan.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..io.atomic import sweep_stale
from ..io.images import Image, read_image
from ..io.outputs import OutputFolder
from .images import Upscaled
from .memory import TilePlan
from .options import PipelineOptions
from .pipeline import ItemResult, run_pipeline
from .upscaler import Upscaler, image_notes
from .writing import write_upscaled


@dataclass
class ImageItem:
    """What happened to one input of an image or folder run."""
    source: Path
    output: Path
    ok: bool
    notes: list[str] = field(default_factory=list)  # "warning: ..." / "note: ..." lines about this image
    grayscale: bool = False
    bits: int | None = None  # bit depth written
    error: str | None = None  # one line, when not ok
    stage: str | None = None  # "decode", "infer" or "encode", when not ok
    skipped: bool = False  # a failure the run went on after (an unreadable file of a folder run)
    result: Upscaled | None = None  # the upscaled image; given to on_item, then dropped to free its memory


@dataclass
class FilesResult:
    items: list[ImageItem]

    @property
    def written(self) -> list[Path]:
        return [item.output for item in self.items if item.ok]

    @property
    def failed(self) -> list[ImageItem]:
        return [item for item in self.items if not item.ok]


def image_key(image: Image) -> tuple[int, int]:
    """Images with the same key can share one batch (the model sees only HxWx3 colour)."""
    return image.rgb.shape[0], image.rgb.shape[1]


@dataclass
class _Decoded:
    image: Image
    plan: TilePlan


def _decode(upscaler: Upscaler, src: Path, share: int) -> tuple[_Decoded, list[str]]:
    """Read `src` and plan its tiling (the budget shared by `share` images per call); with its notes."""
    image = read_image(src)
    h, w = image.rgb.shape[:2]
    tiles = upscaler.plan(h, w, share=share)
    return _Decoded(image, tiles), image_notes(Path(src).name, image, tiles)


def _stages(upscaler: Upscaler, plan: Mapping[Path, Path], options: PipelineOptions, folder: OutputFolder | None,
            info: dict[Path, tuple[bool, list[str]]]):
    lock = threading.Lock()

    def decode(src: Path) -> _Decoded:
        decoded, notes = _decode(upscaler, src, options.batch)
        with lock:
            info[src] = (decoded.image.is_grayscale, notes)
        return decoded

    def infer(value):
        if options.batch == 1:
            return upscaler.upscale_image(value.image, value.plan)
        return upscaler.upscale_images([v.image for v in value], value[0].plan)

    def encode(src: Path, result: Upscaled):
        return result, write_upscaled(plan[src], result, folder)

    return decode, infer, encode


def _item(r: ItemResult, plan: Mapping[Path, Path], options: PipelineOptions,
          info: dict[Path, tuple[bool, list[str]]]) -> ImageItem:
    grayscale, notes = info.pop(r.item, (False, []))
    item = ImageItem(r.item, plan[r.item], r.ok, notes, grayscale)
    if r.ok:
        item.result, item.bits = r.value
    else:
        item.error, item.stage = r.error, r.stage
        item.skipped = r.stage == "decode" and not options.fail_fast
    return item


def upscale_files(upscaler: Upscaler, plan: Mapping[Path, Path], options: PipelineOptions | None = None,
                  folder: OutputFolder | None = None,
                  on_item: Callable[[ImageItem], None] | None = None) -> FilesResult:
    """Upscale every source of `plan` (source -> output path, in the order to report) into its output.

    Decode, model and PNG encode overlap (agileir.upscale.pipeline); `on_item` sees each ImageItem in input
    order as it completes. A file that cannot be read is skipped (item.skipped) unless `options.fail_fast`; a
    failure of the model or the write would repeat for every file, so it ends the run: the item is reported,
    then its exception raised. `folder` (agileir.io.outputs.OutputFolder) is created with the first file
    written, swept of stale temporary files first, and removed again if nothing was written."""
    options = options or PipelineOptions()
    info: dict[Path, tuple[bool, list[str]]] = {}  # filled by the decode threads
    decode, infer, encode = _stages(upscaler, plan, options, folder, info)
    if folder is not None and folder.path.is_dir():
        sweep_stale(folder.path)
    items: list[ImageItem] = []
    pipe: Any = iter(run_pipeline(list(plan), decode, infer, encode, options, batch_key=lambda v: image_key(v.image),
                             encode_takes_item=True))
    try:
        for r in pipe:
            item = _item(r, plan, options, info)
            if on_item is not None:
                on_item(item)
            item.result = None
            items.append(item)
            if not r.ok and not item.skipped:
                raise r.exception if r.exception is not None else ValueError(r.error)
    finally:
        pipe.close()  # every worker has finished: nothing is written after this
        if folder is not None:
            folder.discard_if_unused()
    return FilesResult(items)


def upscale_file(upscaler: Upscaler, src: Path, dst: Path, folder: OutputFolder | None = None,
                 on_item: Callable[[ImageItem], None] | None = None) -> ImageItem:
    """One image, the steps of a folder run in this thread (so SIGINT/SIGTERM interrupt the write itself and no
    output is left); any failure, an unreadable file too, is raised. `folder`: default dst's parent, created
    on the write and removed again if the run fails."""
    src, dst = Path(src), Path(dst)
    folder = folder if folder is not None else OutputFolder(dst.parent)
    if folder.path.is_dir():
        sweep_stale(folder.path)
    try:
        decoded, notes = _decode(upscaler, src, 1)
        result = upscaler.upscale_image(decoded.image, decoded.plan)
        bits = write_upscaled(dst, result, folder)
    finally:
        folder.discard_if_unused()
    item = ImageItem(src, dst, True, notes, decoded.image.is_grayscale, bits, result=result)
    if on_item is not None:
        on_item(item)
    item.result = None
    return item


__all__ = ["FilesResult", "ImageItem", "image_key", "upscale_file", "upscale_files"]
