"""Runners behind one interface (agileir.runtime.base.Runner): PyTorch, ONNX Runtime, TensorRT.

    with load_runner("model.plan") as runner:          # or .onnx / .safetensors / .pth
        sr = runner.infer({"lr": batch})["sr"]           # one batch within the backend's limits
        sr = runner.upscale(batch)                       # any batch: split / tiled / padded as needed
        result = upscale_image(runner.upscale, image, runner.scale)

Backends are imported lazily: importing this package needs neither onnxruntime nor TensorRT.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .artifacts import (BACKENDS, ENGINE_SUFFIXES, ONNX_SUFFIXES, TORCH_SUFFIXES, artifact_kind, artifact_metadata,
                        artifact_precision, onnx_metadata)
from .base import Runner

_NATIVE = {"checkpoint": "pytorch", "onnx": "onnxruntime", "engine": "tensorrt"}


def onnx_runner(path, providers: list[str] | None = None, threads: int = 0, name: str | None = None) -> Runner:
    from .ort import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, providers, threads, name)


def torch_runner(path=None, preset_name: str | None = None, upstream_compat: bool = False,
                 device: str = "auto") -> Runner:
    from .pytorch import PyTorchRunner

    return PyTorchRunner(path, preset_name, upstream_compat, device)


def trt_runner(path, plugin_library=None, flavour: str | None = None) -> Runner:
    """TensorRT or TensorRT-RTX engine runner; `flavour` None: the one the engine's engine.json records."""
    from .tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, plugin_library, flavour=flavour)


# Profile of engines built on the fly (engine_runner): the largest input side rounded up to a multiple of 64, so
# images of nearby sizes share one cache entry (the profile is part of the key), capped at 1024 so a build stays
# short and the engine's activation memory bounded; larger inputs are tiled by the runner (Runner.upscale tiles
# anything beyond the profile's max), smaller ones run directly (min 1x1: the graph pads to the window itself).
ENGINE_SIDE_STEP, ENGINE_SIDE_CAP = 64, 1024


def engine_profile(max_side: int | None = None, batch: int = 1):
    """The ShapeProfile engine_runner builds for inputs whose largest side is `max_side` (None: 256)."""
    from .tensorrt.builder import ShapeProfile

    side = -(-max(1, max_side or 256) // ENGINE_SIDE_STEP) * ENGINE_SIDE_STEP
    side = min(ENGINE_SIDE_CAP, side)
    return ShapeProfile((1, 3, 1, 1), (1, 3, side, side), (max(1, batch), 3, side, side))


def engine_runner(onnx_path: str | Path, flavour: str = "tensorrt", cache_dir: str | Path | None = None,
                  profile=None, echo=print, activate: bool = True) -> Runner:
    """A TensorRT (flavour 'tensorrt') or TensorRT-RTX ('rtx') runner for an ONNX file: its engine is taken
    from the engine cache (`cache_dir`, default tensorrt.cache.default_cache_dir()) or built into it first for
    `profile` (a ShapeProfile; default engine_profile()); a plugin-form graph's library is found or built on first
    use. `echo` gets one line saying whether the engine was built or reused."""
    import time

    from .tensorrt.builder import BuildOptions, fitted_profile, inspect_onnx
    from .tensorrt.cache import cached_engine, default_cache_dir
    from .tensorrt.env import plugin_library_for

    form = inspect_onnx(onnx_path).form
    lib = plugin_library_for(form, flavour)
    options = BuildOptions(profile=fitted_profile(profile or engine_profile(), form, flavour), flavour=flavour,
                           plugin_library=lib)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    start = time.perf_counter()
    engine, built = cached_engine(onnx_path, options, cache, echo=lambda _: None)
    side = options.profile.max[2]
    if built:
        echo(f"engine: built {engine} in {time.perf_counter() - start:.1f} s (profile up to {side}x{side}, cached)")
    else:
        echo(f"engine: reused {engine} from the cache (profile up to {side}x{side})")
    runner = trt_runner(engine, lib, flavour=flavour)
    return runner.activate() if activate else runner


@dataclass(frozen=True)
class RunnerSpec:
    """Everything that chooses and loads a runner, as plain data (it travels to Ray actors and worker processes).

    `artifact`: a checkpoint (.safetensors/.pth/.pt), an .onnx file or an engine (.plan/.engine with its
    engine.json); None: the bundled default checkpoint. `backend`: one of BACKENDS (auto: from the file type).
    `device`: where a PyTorch runner runs (auto: CUDA when present, else cpu; cpu; cuda; cuda:N).
    `engine_cache`: the cache folder of engines built for --backend tensorrt/rtx on an .onnx file.
    `threads`: ONNX Runtime intra-op threads, or PyTorch's threads for a checkpoint (0: their default)."""

    artifact: str | None = None
    backend: str = "auto"
    device: str = "auto"
    preset: str | None = None
    upstream_compat: bool = False
    engine_cache: str | None = None
    threads: int = 0

    @property
    def kind(self) -> str:
        return "checkpoint" if self.artifact is None else artifact_kind(self.artifact)

    def resolved_backend(self) -> str:
        backend = _NATIVE[self.kind] if self.backend in (None, "auto") else self.backend
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
        return backend


def load_runner(spec: RunnerSpec | str | Path | None = None, *, max_side: int | None = None, batch: int = 1,
                echo=print, activate: bool = True, **fields) -> Runner:
    """The runner `spec` describes (a RunnerSpec, or an artifact path / None with RunnerSpec fields as keywords:
    `load_runner("model.onnx", backend="onnxruntime-cpu")`), activated unless `activate=False`.

    'onnxruntime' on a checkpoint exports its standard-form graph in memory; 'tensorrt' / 'rtx' on an .onnx file
    take its engine from the engine cache, building it for inputs up to `max_side` and `batch` first
    (engine_runner). Other combinations are refused with the command that fits."""
    if not isinstance(spec, RunnerSpec):
        spec = RunnerSpec(None if spec is None else str(spec), **fields)
    elif fields:
        spec = replace(spec, **fields)
    path, kind = spec.artifact, spec.kind
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    backend = spec.resolved_backend()
    if kind == "onnx" and backend in ("tensorrt", "rtx"):
        return engine_runner(path, backend, spec.engine_cache, engine_profile(max_side, batch), echo, activate)
    runner = _backend_runner(spec, kind, backend)
    return runner.activate() if activate else runner


def _backend_runner(spec: RunnerSpec, kind: str, backend: str) -> Runner:
    path = spec.artifact
    providers = ["CPUExecutionProvider"] if backend == "onnxruntime-cpu" else None
    if kind == "checkpoint" and backend == "pytorch":
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        return torch_runner(path, spec.preset, spec.upstream_compat, spec.device)
    if kind == "checkpoint" and backend.startswith("onnxruntime"):
        from ..export.onnx_export import annotate, export_onnx
        from .pytorch import PyTorchRunner

        reference = PyTorchRunner(path, spec.preset, spec.upstream_compat, device="cpu")
        proto = export_onnx(reference.loaded.model, "standard")
        annotate(proto, {"scale": reference.scale, "window": reference.window, "form": "standard",
                         "config": reference.config.to_dict()})
        return onnx_runner(proto, providers, spec.threads, f"{reference.loaded.path.name} exported in memory")
    if kind == "onnx" and backend.startswith("onnxruntime"):
        return onnx_runner(path, providers, spec.threads)
    if kind == "engine" and backend in ("tensorrt", "rtx"):
        return trt_runner(path, flavour=None if spec.backend in (None, "auto") else backend)
    if backend in ("tensorrt", "rtx"):
        raise ValueError(f"{Path(str(path)).name}: {backend} runs engines; build one first with `agileir build "
                         f"--target {backend}`")
    raise ValueError(f"{Path(str(path)).name}: the {backend} backend cannot run a {kind} file")


__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "TORCH_SUFFIXES", "Runner", "RunnerSpec", "artifact_kind",
           "artifact_metadata", "artifact_precision", "engine_profile", "engine_runner", "load_runner", "onnx_metadata", "onnx_runner", "torch_runner",
           "trt_runner"]
