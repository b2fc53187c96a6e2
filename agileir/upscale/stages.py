"""The per-image steps of every image run: decode -> plan tiles -> infer -> write, on one typed item.

    item = ImageItem(src, dst)
    decode(item)                          # reads the input (read_image, or `read` for a URI)
    plan(upscaler, item, share=batch)     # its tiling under the memory budget, and the notes it brings
    infer(upscaler, [item, ...])          # same-size items in one model call (Upscaler.upscale_images)
    write(item, outputs)                  # an atomic PNG through the run's output gate

A failing step is recorded with `fail(item, stage, error, options)`; `stops_run(item)` is the failure policy
all image runs share: a file that cannot be read is skipped and reported (the run goes on, exit 1 at the end)
unless `fail_fast`; a failure of the model or of the write would repeat for every file, so it ends the run.

The local folder pipeline (agileir.upscale.files), the Ray Data tasks and actors of `agileir batch`
(agileir.cluster.actors) and the Python API call these, so one image gives the same bytes on every path;
video frames (agileir.upscale.video) share `Upscaler.plan` and `Upscaler.upscale_frames` with them.
`engine_max_side` is the one rule that sizes an engine profile built for a run (agileir-infer, batch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from ..io.images import Image, read_image
from .arrays import Upscaled
from .memory import TilePlan
from .options import PipelineOptions
from .upscaler import Upscaler, image_notes
from .writing import RunOutputs, write_upscaled

DECODE, PLAN, INFER, WRITE = "decode", "plan", "infer", "encode"  # the steps; "encode" is the write's name in reports


@dataclass
class ImageItem:
    """One input of an image, folder or batch run, and what happened to it."""

    source: Path | str  # a local path, or a URI (batch)
    output: Path
    ok: bool = False
    notes: list[str] = field(default_factory=list)  # "warning: ..." / "note: ..." lines about this image
    grayscale: bool = False
    bits: int | None = None  # bit depth written
    error: str | None = None  # one line, when it failed
    stage: str | None = None  # DECODE, PLAN, INFER or WRITE, when it failed
    skipped: bool = False  # a failure the run went on after (an unreadable file)
    errno: int = 0  # an OSError's code, when it failed with one (ENOSPC: a full disk)
    reused: bool = False  # resume: the output an earlier run wrote is complete, not redone
    sha256: str | None = None  # of the output (batch manifests)
    seconds: float = 0.0
    image: Image | None = field(default=None, repr=False)  # the decoded input, until inferred
    tiles: TilePlan | None = None
    result: Upscaled | None = field(default=None, repr=False)  # the upscaled image, until reported

    @property
    def name(self) -> str:
        return PurePosixPath(str(self.source).rstrip("/")).name

    @property
    def status(self) -> str:
        """'ok', 'skipped' (reused from an earlier run) or 'failed': a batch manifest's words."""
        return "skipped" if self.reused else "ok" if self.ok else "failed"

    @property
    def size(self) -> tuple[int, int] | None:
        """The decoded input's height and width: items of one size may share a model call."""
        return None if self.image is None else (self.image.rgb.shape[0], self.image.rgb.shape[1])


def decode(item: ImageItem, read: Callable[[Path | str], Image] = read_image) -> ImageItem:
    item.image = read(item.source)
    item.grayscale = item.image.is_grayscale
    return item


def plan(upscaler: Upscaler, item: ImageItem, share: int = 1) -> ImageItem:
    """The tiling of the decoded item, the budget shared by the `share` images of one model call."""
    assert item.image is not None, "plan needs a decoded item"
    h, w = item.image.rgb.shape[:2]
    item.tiles = upscaler.plan(h, w, share=share)
    item.notes.extend(image_notes(item.name, item.image, item.tiles))
    return item


def infer(upscaler: Upscaler, items: list[ImageItem]) -> list[ImageItem]:
    """Planned items of one size in one model call (the first one's plan); their inputs are dropped."""
    images = [item.image for item in items]
    results = upscaler.upscale_images(images, items[0].tiles)  # type: ignore[arg-type]
    for item, result in zip(items, results):
        item.result, item.image = result, None
    return items


def write(item: ImageItem, outputs: RunOutputs) -> ImageItem:
    """The upscaled item as an atomic PNG through `outputs` (the run's gate, the output claimed in it)."""
    assert item.result is not None, "write needs an inferred item"
    item.bits = write_upscaled(item.output, item.result, outputs)
    item.ok = True
    return item


def fail(item: ImageItem, stage: str, error: BaseException, options: PipelineOptions | None = None) -> ImageItem:
    """Record `error` of `stage` on the item; an unreadable file is `skipped` unless `options.fail_fast`."""
    text = str(error).splitlines()[0] if str(error) else ""
    if not (isinstance(error, (ValueError, OSError)) and text):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    item.ok, item.error, item.stage = False, text, stage
    item.errno = (error.errno or 0) if isinstance(error, OSError) else 0
    item.skipped = stage == DECODE and not (options or PipelineOptions()).fail_fast
    item.image = item.result = None
    return item


def stops_run(item: ImageItem) -> bool:
    """The failure policy: whether the run ends after this item (a model or write failure, or any failure
    under fail_fast)."""
    return not item.ok and not item.reused and not item.skipped


def same_size_runs(items: Iterable[ImageItem], batch: int) -> list[list[ImageItem]]:
    """Consecutive decoded items of one size, up to `batch` per group: the model calls of a batch."""
    groups: list[list[ImageItem]] = []
    for item in items:
        if groups and len(groups[-1]) < batch and groups[-1][0].size == item.size:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def largest_side(images: Iterable[Path | str]) -> int | None:
    """The largest side among local images, from their headers (unreadable ones are left to the run)."""
    from PIL import Image as PILImage

    side = None
    for path in images:
        try:
            with PILImage.open(path) as im:
                side = max(side or 0, *im.size)
        except Exception:
            continue
    return side


def engine_max_side(backend: str | None, images: Iterable[Path | str]) -> int | None:
    """The largest input side an engine built for this run must take: the largest image's, when the run builds
    an engine (--backend tensorrt / rtx on an .onnx file); None otherwise (runtime.engine_profile's default)."""
    return largest_side(images) if backend in ("tensorrt", "rtx") else None


__all__ = ["DECODE", "INFER", "PLAN", "WRITE", "ImageItem", "decode", "engine_max_side", "fail", "infer",
           "largest_side", "plan", "same_size_runs", "stops_run", "write"]
