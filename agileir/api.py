"""The Python API: the few names a notebook or a script calls (reference: docs/api.md).

    from agileir import export, load_runner, upscale
    runner = load_runner()                                   # the bundled AgileIR-light x4; or a checkpoint, an
                                                             # .onnx file, an engine, a RunnerSpec
    sr = upscale(runner, lr)                                 # an HxWx3 (or HxW) array -> the upscaled array
    upscale(runner, "photo.png")                             # a file -> photo_x4.png beside it
    upscale(runner, "frames/", "frames_x4/")                 # a folder -> the written paths, in input order
    upscale(runner, "clip.mp4")                              # a video -> clip_x4.mkv (the `video` extra)
    upscale("out/model.onnx", lr, tile=128, max_memory="2G")  # by path: loaded once, kept for the next call
    export("model.safetensors", "out")                       # ONNX, both forms (the torch and onnx extras)

Each function is a thin call into the library (agileir.runtime, agileir.upscale, agileir.deploy); nothing here
imports PyTorch unless a checkpoint is loaded, and every file is written through the output gate: an input is
never replaced, an existing file agileir did not write is refused (OutputConflict) unless `overwrite=True`.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence, Union, overload

import numpy as np

from .runtime import RunnerSpec
from .runtime.base import Runner

PathLike = Union[str, "os.PathLike[str]"]
Model = Union[Runner, RunnerSpec, str, "os.PathLike[str]", None]
CACHE_SIZE = 2  # runners kept loaded for models given by path (least recently used one released first)
log = logging.getLogger("agileir")


def load_model(path: PathLike | None = None, preset: str | None = None, fuse: bool = False):
    """A checkpoint (None: the bundled AgileIR-light x4) as an agileir.models.LoadedModel (.model is the
    torch.nn.Module in eval mode, .config its SRConfig). Needs PyTorch."""
    from .models.load import load_model as load

    return load(path, preset, fuse=fuse)


def load_runner(model: RunnerSpec | PathLike | None = None, **fields) -> Runner:
    """An activated runner for a checkpoint (None: the bundled AgileIR-light x4), an .onnx file or an engine (by
    its suffix), or for a RunnerSpec; keywords are RunnerSpec fields (backend=, device=, threads=, ...).
    `device` means the same for every backend: auto (its choice in `runner.device_line` and the "agileir" log),
    cpu, cuda, cuda:N (DeviceUnavailable when not usable here). The caller owns it: use it as a context manager,
    or call `runner.deactivate()`."""
    from .runtime import load_runner as load

    return load(model, echo=log.info, **fields)


class _RunnerCache:
    """Runners of models given by path, loaded once: keyed by the RunnerSpec and the artifact's mtime and size
    (a rewritten file loads again); at most CACHE_SIZE kept, released by release()."""

    def __init__(self) -> None:
        self._runners: OrderedDict[tuple, Runner] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(spec: RunnerSpec) -> tuple:
        if spec.artifact is None:
            return (spec, None)
        st = os.stat(spec.artifact)
        return (replace(spec, artifact=os.path.realpath(spec.artifact)), st.st_mtime_ns, st.st_size)

    def get(self, spec: RunnerSpec) -> Runner:
        key = self.key(spec)
        with self._lock:
            runner = self._runners.get(key)
            if runner is not None:
                self._runners.move_to_end(key)
                return runner
            runner = load_runner(spec)
            self._runners[key] = runner
            while len(self._runners) > CACHE_SIZE:
                self._runners.popitem(last=False)[1].deactivate()
            return runner

    def clear(self) -> None:
        with self._lock:
            while self._runners:
                self._runners.popitem()[1].deactivate()


_cache = _RunnerCache()


def release() -> None:
    """Release every runner `upscale` loaded for a model given by path (their memory, a GPU's too)."""
    _cache.clear()


def runner_for(model: Model, **fields) -> Runner:
    """`model` itself when it is a runner, else the cached runner for it (see `upscale`)."""
    if isinstance(model, Runner):
        if fields:
            raise ValueError(f"{', '.join(fields)}: RunnerSpec fields apply to a model given by path, not to a runner")
        return model
    if isinstance(model, RunnerSpec):
        spec = replace(model, **fields) if fields else model
    else:
        spec = RunnerSpec(None if model is None else str(model), **fields)
    if spec.artifact is not None and not Path(spec.artifact).is_file():
        raise FileNotFoundError(f"model not found: {spec.artifact}")
    return _cache.get(spec)


@overload
def upscale(model: Model, source: np.ndarray, output: None = None, *, tile: int | str | None = None,
            overlap: int | None = None, max_memory: int | str | None = None, batch: int = 1,
            overwrite: bool = False) -> np.ndarray: ...
@overload
def upscale(model: Model, source: Sequence[PathLike], output: PathLike, *, tile: int | str | None = None,
            overlap: int | None = None, max_memory: int | str | None = None, batch: int = 1,
            overwrite: bool = False) -> list[Path]: ...
@overload
def upscale(model: Model, source: PathLike, output: PathLike | None = None, *, tile: int | str | None = None,
            overlap: int | None = None, max_memory: int | str | None = None, batch: int = 1,
            overwrite: bool = False) -> Path | list[Path]: ...
def upscale(model, source, output=None, *, tile=None, overlap=None, max_memory=None, batch=1, overwrite=False):
    """Upscale `source` with `model`: a runner (yours, left active), or what load_runner takes (a path, a
    RunnerSpec, None for the bundled AgileIR-light x4), loaded once and kept for later calls (release()).

    * an array (HxW, HxWx1, HxWx3, HxWx4; uint8, uint16 or float on [0, 1]: agileir.io.pixels) -> the upscaled
      array, same form and dtype, nothing written;
    * an image file -> writes `output` (default NAME_x{scale}.png beside it), returns its path;
    * a video file (.mp4, .mkv, ...; the `video` extra) -> writes `output` (default NAME_x{scale}.mkv; the
      container from its suffix) with agileir video's default encoding, returns its path (other encodings:
      agileir.upscale.video.upscale_video with an EncodingOptions);
    * a folder -> NAME_x{scale}.png per image into `output` (default SOURCE_x{scale}), returns the paths in input
      order; a list of image files the same into the folder `output`.

    Tiling as agileir-infer's: `tile` None/'auto' (the whole image unless its estimated peak memory is over the
    budget), 0 (never), N (tiles of N input pixels); `overlap` input pixels (default 16); `max_memory` the budget
    ('4G', '512M' or bytes; default half of the available memory); `batch` images of one size per model call.
    Outputs go through the output gate: an input is never replaced, an existing file agileir did not write is
    refused (agileir.io.gate.OutputConflict) unless `overwrite`. Bad input raises ValueError (ImageError,
    VideoError), a missing package ModuleNotFoundError, a missing device DeviceUnavailable."""
    from .upscale.upscaler import Upscaler

    runner = runner_for(model)
    upscaler = Upscaler(runner, tiling_options(tile, overlap, max_memory))
    if isinstance(source, np.ndarray):
        if output is not None:
            raise ValueError("an array is upscaled in memory: write the result yourself, or pass a file path")
        return _upscale_array(upscaler, source)
    inputs = _model_inputs(model)
    if isinstance(source, (list, tuple)):
        if output is None:
            raise ValueError("a list of images needs an output folder")
        return _upscale_folder(upscaler, [Path(p) for p in source], Path(output), batch, inputs, overwrite)
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if source.is_dir():
        from .io.images import list_images

        out_dir = Path(output) if output is not None else source.with_name(f"{source.name}_x{upscaler.scale}")
        return _upscale_folder(upscaler, list_images(source), out_dir, batch, inputs, overwrite)
    from .upscale.video import is_video_path

    if is_video_path(source):
        return _upscale_video(upscaler, source, output, batch, inputs, overwrite)
    return _upscale_file(upscaler, source, output, inputs, overwrite)


def tiling_options(tile: int | str | None = None, overlap: int | None = None, max_memory: int | str | None = None):
    """agileir.upscale.options.TilingOptions from the API's spellings (the CLI's: tile 'auto' | N, '4G')."""
    from .upscale.memory import parse_size, parse_tile
    from .upscale.options import TilingOptions

    budget = max_memory if isinstance(max_memory, int) or max_memory is None else parse_size(max_memory)
    defaults = TilingOptions()
    return TilingOptions(parse_tile(tile), defaults.overlap if overlap is None else int(overlap), budget)


def export(model: PathLike | None = None, out_dir: PathLike = "export", forms: tuple[str, ...] = ("standard", "plugin"),
           validate: bool = True, overwrite: bool = False, progress: Any = None, **request: Any) -> dict:
    """`agileir-export` of a checkpoint (None: the bundled one) into `out_dir`: model.onnx / model.plugin.onnx
    (validated in ONNX Runtime) and export.json, whose content is returned. Needs the torch and onnx extras.
    Other agileir.deploy.ExportRequest fields as keywords (onnx=ExportOptions(...), variants=VariantOptions(...),
    preset=...). Written through the output gate, as the command: a file agileir did not write is refused
    (OutputConflict) unless `overwrite`. Its stages go to the "agileir" logger, and to `progress`
    (agileir.io.progress.Progress: lines, bars, an event callback) when given."""
    from .deploy.export import ExportRequest, claim_export, export_checkpoint

    forms = (forms,) if isinstance(forms, str) else tuple(forms)  # forms="plugin" is one form, not six letters
    req = ExportRequest(None if model is None else str(model), Path(out_dir), forms, validate=validate,
                        **request)
    result = export_checkpoint(req, claim_export(req, overwrite), echo=None, progress=progress)
    if result.failed:
        raise ValueError(f"ONNX Runtime validation failed for: {', '.join(result.failed)} (see export.json)")
    return result.info


def _model_inputs(model: Model) -> list[Path]:
    """The files a model given by path reads (its outputs may not replace them); a runner's own file too."""
    if isinstance(model, Runner):
        path = getattr(model, "path", None) or getattr(getattr(model, "loaded", None), "path", None)
        return [Path(path)] if path else []
    spec = model if isinstance(model, RunnerSpec) else RunnerSpec(None if model is None else str(model))
    return spec.inputs()


def _gate(inputs: list[Path], sources: list[Path], overwrite: bool):
    from .io.gate import OutputGate

    return OutputGate([*inputs, *sources], overwrite)


def _upscale_array(upscaler, array: np.ndarray) -> np.ndarray:
    from .io.pixels import upscale_array  # what an array may be: agileir.io.pixels (dtype, range, shape, alpha)

    return upscale_array(upscaler.upscale_rgb, array, upscaler.scale)


def _upscale_file(upscaler, source: Path, output, inputs: list[Path], overwrite: bool) -> Path:
    from .io.outputs import output_names
    from .upscale.files import upscale_file
    from .upscale.writing import IMAGE, RunOutputs

    out = Path(output) if output is not None else source.with_name(output_names([source], upscaler.scale)[0])
    gate = _gate(inputs, [source], overwrite)
    gate.claim(out, IMAGE, f"output of {source}")  # before any work: the input and user files refused
    return upscale_file(upscaler, source, out, RunOutputs(gate)).output


def _upscale_folder(upscaler, images: list[Path], out_dir: Path, batch: int, inputs: list[Path],
                    overwrite: bool) -> list[Path]:
    from .io.outputs import OutputFolder, folder_outputs
    from .upscale.files import upscale_files
    from .upscale.options import PipelineOptions
    from .upscale.writing import IMAGE, RunOutputs

    plan = folder_outputs(images, out_dir, upscaler.scale)
    gate = _gate(inputs, images, overwrite)
    for src, dst in plan.items():  # before any work
        gate.claim(dst, IMAGE, f"output of {src}")
    options = PipelineOptions(batch=batch, fail_fast=True, handle_signals=False)
    upscale_files(upscaler, plan, options, RunOutputs(gate, OutputFolder(out_dir)))
    return [plan[src] for src in images]


def _upscale_video(upscaler, source: Path, output, batch: int, inputs: list[Path], overwrite: bool) -> Path:
    from .upscale.options import PipelineOptions
    from .upscale.video import upscale_video
    from .upscale.writing import VIDEO, RunOutputs

    out = Path(output) if output is not None else source.with_name(f"{source.stem}_x{upscaler.scale}.mkv")
    gate = _gate(inputs, [source], overwrite)
    gate.claim(out, VIDEO, f"output of {source}")
    pipeline = PipelineOptions(batch=batch, handle_signals=False)
    return upscale_video(upscaler, source, out, None, pipeline, outputs=RunOutputs(gate)).path


__all__ = ["Model", "RunnerSpec", "export", "load_model", "load_runner", "release", "runner_for", "tiling_options",
           "upscale"]
