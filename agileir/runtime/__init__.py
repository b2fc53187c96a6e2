"""Runners behind one interface (agileir.runtime.base.Runner): PyTorch, ONNX Runtime, TensorRT.

    with load_runner("model.plan") as runner:          # or .onnx / .safetensors / .pth
        sr = runner.infer({"lr": batch})["sr"]           # one batch within the backend's limits
        sr = runner.upscale(batch)                       # any batch: split / tiled / padded as needed
        result = upscale_image(runner.upscale, image, runner.scale)

Backends are imported lazily: importing this package needs neither onnxruntime nor TensorRT.
"""
from __future__ import annotations

from pathlib import Path

from .artifacts import (BACKENDS, ENGINE_SUFFIXES, ONNX_SUFFIXES, TORCH_SUFFIXES, artifact_kind, artifact_metadata,
                        artifact_precision, onnx_metadata)
from .base import Runner

_NATIVE = {"checkpoint": "pytorch", "onnx": "onnxruntime", "engine": "tensorrt"}


def onnx_runner(path, providers: list[str] | None = None, threads: int = 0, name: str | None = None) -> Runner:
    from .ort import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, providers, threads, name)


def torch_runner(path=None, preset_name: str | None = None, upstream_compat: bool = False) -> Runner:
    from .pytorch import PyTorchRunner

    return PyTorchRunner(path, preset_name, upstream_compat)


def trt_runner(path, plugin_library=None, flavour: str | None = None) -> Runner:
    """TensorRT or TensorRT-RTX engine runner; `flavour` None: the one the engine's engine.json records."""
    from .tensorrt.runner import TensorRTRunner

    return TensorRTRunner(path, plugin_library, flavour=flavour)


def load_runner(path: str | Path | None, preset_name: str | None = None, upstream_compat: bool = False,
                backend: str | None = None, threads: int = 0, activate: bool = True) -> Runner:
    """The runner for a checkpoint (default: the bundled model), an .onnx file or a TensorRT engine
    (.plan/.engine with its engine.json), activated unless `activate=False`.

    `backend` overrides the choice: 'onnxruntime-cpu' forces the CPU provider; 'onnxruntime' on a checkpoint
    exports its standard-form graph in memory. Other combinations are refused with the command that fits."""
    backend_arg = backend
    kind = "checkpoint" if path is None else artifact_kind(path)
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    backend = _NATIVE[kind] if backend in (None, "auto") else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    providers = ["CPUExecutionProvider"] if backend == "onnxruntime-cpu" else None
    if kind == "checkpoint" and backend == "pytorch":
        runner = torch_runner(path, preset_name, upstream_compat)
    elif kind == "checkpoint" and backend.startswith("onnxruntime"):
        from ..export.onnx_export import annotate, export_onnx
        from .pytorch import PyTorchRunner

        reference = PyTorchRunner(path, preset_name, upstream_compat)
        proto = export_onnx(reference.loaded.model, "standard")
        annotate(proto, {"scale": reference.scale, "window": reference.window, "form": "standard",
                         "config": reference.config.to_dict()})
        runner = onnx_runner(proto, providers, threads, f"{reference.loaded.path.name} exported in memory")
    elif kind == "onnx" and backend.startswith("onnxruntime"):
        runner = onnx_runner(path, providers, threads)
    elif kind == "engine" and backend in ("tensorrt", "rtx"):
        runner = trt_runner(path, flavour=None if backend_arg in (None, "auto") else backend)
    elif backend in ("tensorrt", "rtx"):
        raise ValueError(f"{Path(str(path)).name}: {backend} runs engines; build one first with `agileir build "
                         f"--target {backend}`")
    else:
        raise ValueError(f"{Path(str(path)).name}: the {backend} backend cannot run a {kind} file")
    return runner.activate() if activate else runner


__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "TORCH_SUFFIXES", "Runner", "artifact_kind",
           "artifact_metadata", "artifact_precision", "load_runner", "onnx_metadata", "onnx_runner", "torch_runner",
           "trt_runner"]
