"""The Python API: the few names a notebook or a script calls (README, "Python API").

    from agileir import api
    runner = api.load_runner("out/model.onnx")          # or a checkpoint, an engine, a RunnerSpec, None
    sr = api.upscale(runner, lr)                          # an HxWx3 (or HxW) array -> the upscaled array
    api.upscale(runner, "in.png", "in_x4.png")            # a file -> its output path
    api.upscale(runner, "frames/", "frames_x4/")          # a folder -> the output paths, in input order
    api.export("model.safetensors", "out/")              # ONNX, both forms (needs the torch and onnx extras)

Each function is a thin call into the library (agileir.runtime, agileir.upscale, agileir.deploy); nothing here
imports PyTorch unless a checkpoint is loaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from .runtime import RunnerSpec
from .runtime.base import Runner

Model = Union[Runner, RunnerSpec, str, "os.PathLike[str]", None]


def load_model(path: str | os.PathLike | None = None, preset: str | None = None, fuse: bool = False):
    """A checkpoint (None: the bundled AgileIR-light x4) as an agileir.models.LoadedModel (.model is the
    torch.nn.Module in eval mode, .config its SRConfig). Needs PyTorch."""
    from .models.load import load_model as load

    return load(path, preset, fuse=fuse)


def load_runner(model: RunnerSpec | str | os.PathLike | None = None, **fields) -> Runner:
    """An activated runner for a checkpoint, an .onnx file or an engine (by its suffix), or for a RunnerSpec;
    keywords are RunnerSpec fields (backend=, device=, threads=, ...). Use it as a context manager to release it."""
    from .runtime import load_runner as load

    return load(model, echo=lambda _: None, **fields)


def upscale(model: Model, source, output: str | os.PathLike | None = None, *, tile: int | None = None,
            batch: int = 1):
    """Upscale with `model` (a runner, or what load_runner takes).

    `source` an array (HxWx3 / HxW, uint8 or float on [0, 1]): returns the upscaled array of the same dtype.
    `source` an image file: writes `output` (default NAME_x{scale}.png beside it) and returns its path.
    `source` a folder: writes NAME_x{scale}.png per image into `output` (default SOURCE_x{scale}) and returns
    the paths. `tile`: None tiles only above the memory budget, 0 never, N in tiles of N LR pixels; `batch`
    images of one size share a model call."""
    from .upscale.options import TilingOptions
    from .upscale.upscaler import Upscaler

    if not isinstance(model, Runner):
        with load_runner(model) as runner:
            return upscale(runner, source, output, tile=tile, batch=batch)
    upscaler = Upscaler(model, TilingOptions(tile=tile))
    if isinstance(source, np.ndarray):
        return _upscale_array(upscaler, source)
    source = Path(source)
    if source.is_dir():
        return _upscale_folder(upscaler, source, output, batch)
    return _upscale_file(upscaler, source, output)


def export(model: str | os.PathLike | None = None, out_dir: str | os.PathLike = "export",
           forms: tuple[str, ...] = ("standard", "plugin"), validate: bool = True) -> dict:
    """`agileir-export` of a checkpoint (None: the bundled one) into `out_dir`: model.onnx / model.plugin.onnx
    (validated in ONNX Runtime) and export.json, whose content is returned. Needs the torch and onnx extras."""
    from .deploy.export import ExportRequest, export_checkpoint

    request = ExportRequest(None if model is None else str(model), Path(out_dir), tuple(forms), validate=validate)
    result = export_checkpoint(request, echo=lambda _: None)
    if result.failed:
        raise ValueError(f"ONNX Runtime validation failed for: {', '.join(result.failed)} (see export.json)")
    return result.info


def _upscale_array(upscaler, array: np.ndarray) -> np.ndarray:
    from .io.pixels import upscale_array  # what an array may be: agileir.io.pixels (dtype, range, shape, alpha)

    return upscale_array(upscaler.upscale_rgb, array, upscaler.scale)


def _upscale_file(upscaler, source: Path, output) -> Path:
    from .io.outputs import output_names
    from .upscale.files import upscale_file

    out = Path(output) if output is not None else source.with_name(output_names([source], upscaler.scale)[0])
    return upscale_file(upscaler, source, out).output  # its own output gate: the input and user files refused


def _upscale_folder(upscaler, source: Path, output, batch: int) -> list[Path]:
    from .io.images import list_images
    from .io.outputs import OutputFolder, folder_outputs
    from .upscale.files import upscale_files
    from .upscale.options import PipelineOptions
    from .upscale.writing import IMAGE, RunOutputs

    images = list_images(source)
    out_dir = Path(output) if output is not None else source.with_name(f"{source.name}_x{upscaler.scale}")
    plan = folder_outputs(images, out_dir, upscaler.scale)
    outputs = RunOutputs.claimed(plan.items(), IMAGE, OutputFolder(out_dir))  # before any work
    options = PipelineOptions(batch=batch, fail_fast=True, handle_signals=False)
    upscale_files(upscaler, plan, options, outputs)
    return [plan[src] for src in images]


__all__ = ["RunnerSpec", "load_model", "load_runner", "upscale", "export"]
