"""Runners behind one interface (agileir.runtime.base.Runner): PyTorch, ONNX Runtime, OpenVINO, TensorRT.

    with load_runner("model.plan") as runner:          # or .onnx / .safetensors / .pth
        sr = runner.infer({"lr": batch})["sr"]           # one batch within the backend's limits
        sr = runner.upscale(batch)                       # any batch: split / tiled / padded as needed
        result = Upscaler(runner).upscale_image(image)      # agileir.upscale.upscaler: tiling, budget

Backends are imported lazily: importing this package needs neither onnxruntime nor TensorRT.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .artifacts import (BACKENDS, ENGINE_SUFFIXES, ONNX_SUFFIXES, TORCH_SUFFIXES, artifact_inputs, artifact_kind,
                        artifact_metadata, artifact_precision, onnx_metadata)
from .base import DeviceUnavailable, Runner
from .devices import parse_device

_NATIVE = {"checkpoint": "pytorch", "onnx": "onnxruntime", "engine": "tensorrt"}


def onnx_runner(path, providers: list | None = None, threads: int = 0, name: str | None = None,
                device: str = "auto") -> Runner:
    from .ort import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, providers, threads, name, device)


def torch_runner(path=None, preset_name: str | None = None, upstream_compat: bool = False,
                 device: str = "auto") -> Runner:
    from .pytorch import PyTorchRunner

    return PyTorchRunner(path, preset_name, upstream_compat, device)


def openvino_runner(path, device: str = "auto", threads: int = 0, precision_hint: str = "f32",
                    cache_dir: str | Path | None = None, name: str | None = None) -> Runner:
    """OpenVINO on an .onnx file or proto (standard / attention form, any precision), agileir.runtime.openvino."""
    from .openvino import OpenVINORunner

    return OpenVINORunner(path, device, threads, precision_hint, cache_dir, name)


def trt_runner(path, plugin_library=None, flavour: str | None = None, device: str = "auto") -> Runner:
    """TensorRT or TensorRT-RTX engine runner; `flavour` None: the one the engine's engine.json records; `device`
    auto / cuda / cuda:N (engines run only on a GPU: cpu is refused)."""
    from .devices import device_line, engine_device
    from .tensorrt.runner import TensorRTRunner

    index = engine_device(device, Path(str(path)).name)
    runner = TensorRTRunner(path, plugin_library, device=index, flavour=flavour)
    runner.device_line = device_line(f"cuda:{index}", device, "TensorRT engines run on the GPU")
    return runner


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
                  profile=None, echo=print, activate: bool = True, device: str = "auto") -> Runner:
    """A TensorRT (flavour 'tensorrt') or TensorRT-RTX ('rtx') runner for an ONNX file: its engine is taken
    from the engine cache (`cache_dir`, default tensorrt.cache.default_cache_dir()) or built into it first for
    `profile` (a ShapeProfile; default engine_profile()); a plugin-form graph's library is found or built on first
    use. `echo` gets one line saying whether the engine was built or reused."""
    import time

    from .tensorrt.builder import BuildOptions, fitted_profile, inspect_onnx
    from .tensorrt.cache import cached_engine, default_cache_dir
    from .tensorrt.env import plugin_library_for

    from .devices import engine_device

    engine_device(device, Path(onnx_path).name)  # `cpu` refused before an engine is built
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
    runner = trt_runner(engine, lib, flavour=flavour, device=device)
    return runner.activate() if activate else runner


@dataclass(frozen=True)
class RunnerSpec:
    """Everything that chooses and loads a runner, as plain data (it travels to Ray actors and worker processes).

    `artifact`: a checkpoint (.safetensors/.pth/.pt), an .onnx file or an engine (.plan/.engine with its
    engine.json); None: the bundled default checkpoint. `backend`: one of BACKENDS (auto: from the file type).
    `device`: where it runs, the same for every backend (agileir.runtime.devices): auto, cpu, cuda or cuda:N.
    `engine_cache`: the cache folder of engines built for --backend tensorrt/rtx on an .onnx file.
    `threads`: ONNX Runtime intra-op threads, or PyTorch's threads for a checkpoint (0: their default).
    `plugin_library`: the GSWA TensorRT plugin library a plugin-form engine loads (None: found or built).
    `ov_precision`: OpenVINO's inference precision hint, f32 (parity), bf16 or f16; OpenVINO devices (GPU, NPU,
    AUTO) go in `device` with --backend openvino. backend auto on an .onnx file: agileir.runtime.auto."""

    artifact: str | None = None
    backend: str = "auto"
    device: str = "auto"
    preset: str | None = None
    upstream_compat: bool = False
    engine_cache: str | None = None
    threads: int = 0
    plugin_library: str | None = None
    ov_precision: str = "f32"

    @property
    def kind(self) -> str:
        return "checkpoint" if self.artifact is None else artifact_kind(self.artifact)

    def resolved_backend(self) -> str:
        return self.backend_choice()[0]

    def backend_choice(self) -> tuple[str, str | None]:
        """(backend, why) where auto chose the backend of an .onnx file by the measured rule, else (backend, None)."""
        if self.backend in (None, "auto") and self.kind == "onnx":
            from .auto import auto_onnx_backend

            return auto_onnx_backend(self.artifact, self.device)
        backend = _NATIVE[self.kind] if self.backend in (None, "auto") else self.backend
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
        return backend, None

    def inputs(self) -> list[Path]:
        """The files running this spec reads, so that no output of a run may replace them: the artifact (None:
        the bundled checkpoint), an engine's engine.json, the plugin library given."""
        return artifact_inputs(self.artifact, plugin_library=self.plugin_library)


def load_runner(spec: RunnerSpec | str | Path | None = None, *, max_side: int | None = None, batch: int = 1,
                echo=None, activate: bool = True, **fields) -> Runner:
    """The runner `spec` describes (a RunnerSpec, or an artifact path / None with RunnerSpec fields as keywords:
    `load_runner("model.onnx", backend="onnxruntime-cpu")`), activated unless `activate=False`.

    'onnxruntime' on a checkpoint exports its standard-form graph in memory; 'tensorrt' / 'rtx' on an .onnx file
    take its engine from the engine cache, building it for inputs up to `max_side` and `batch` first
    (engine_runner). Other combinations are refused with the command that fits. With device 'auto', `echo` gets
    one line saying which device the activated runner chose (default: stderr, so that a command's stdout stays
    its result)."""
    echo = echo or _to_stderr
    if not isinstance(spec, RunnerSpec):
        spec = RunnerSpec(None if spec is None else str(spec), **fields)
    elif fields:
        spec = replace(spec, **fields)
    path, kind = spec.artifact, spec.kind
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    backend, why = spec.backend_choice()
    if backend != "openvino":  # OpenVINO's own device names: agileir.runtime.openvino
        parse_device(spec.device)  # an unknown device: one line before anything loads
    if why:
        echo(f"backend: {backend} (auto: {why})")
    if kind == "onnx" and backend in ("tensorrt", "rtx"):
        runner = engine_runner(path, backend, spec.engine_cache, engine_profile(max_side, batch), echo, False,
                               spec.device)
    else:
        runner = _backend_runner(spec, kind, backend)
    if not activate:
        return runner
    runner.activate()
    line = getattr(runner, "device_line", None)
    if line and (spec.device or "auto").lower() == "auto":
        echo(line)
    return runner


def _to_stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _backend_runner(spec: RunnerSpec, kind: str, backend: str) -> Runner:
    path = spec.artifact
    if kind == "checkpoint" and backend == "pytorch":
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        return torch_runner(path, spec.preset, spec.upstream_compat, spec.device)
    if kind in ("checkpoint", "onnx") and backend.startswith("onnxruntime"):
        from .devices import ort_providers

        providers = ort_providers(spec.device, backend)  # CUDA asked for and missing: DeviceUnavailable, here
    if kind == "checkpoint" and backend in ("onnxruntime", "onnxruntime-cpu", "openvino"):
        proto, name = _exported_in_memory(spec)
        if backend == "openvino":
            return openvino_runner(proto, spec.device, spec.threads, spec.ov_precision, name=name)
        return onnx_runner(proto, providers, spec.threads, name, spec.device)
    if kind == "onnx" and backend.startswith("onnxruntime"):
        return onnx_runner(path, providers, spec.threads, device=spec.device)
    if kind == "onnx" and backend == "openvino":
        return openvino_runner(path, spec.device, spec.threads, spec.ov_precision, spec.engine_cache)
    if kind == "engine" and backend in ("tensorrt", "rtx"):
        return trt_runner(path, spec.plugin_library, None if spec.backend in (None, "auto") else backend,
                          spec.device)
    if backend in ("tensorrt", "rtx"):
        raise ValueError(f"{Path(str(path)).name}: {backend} runs engines; build one first with `agileir build "
                         f"--target {backend}`")
    raise ValueError(f"{Path(str(path)).name}: the {backend} backend cannot run a {kind} file")


def _exported_in_memory(spec: RunnerSpec):
    """(standard-form ONNX proto with agileir metadata, name) of the checkpoint `spec.artifact`."""
    from ..export.onnx_export import annotate, export_onnx
    from .pytorch import PyTorchRunner

    reference = PyTorchRunner(spec.artifact, spec.preset, spec.upstream_compat, device="cpu")
    proto = export_onnx(reference.loaded.model, "standard")
    annotate(proto, {"scale": reference.scale, "window": reference.window, "form": "standard",
                     "config": reference.config.to_dict()})
    return proto, f"{reference.loaded.path.name} exported in memory"


__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "TORCH_SUFFIXES", "DeviceUnavailable", "Runner", "RunnerSpec",
           "artifact_inputs", "artifact_kind", "parse_device",
           "artifact_metadata", "artifact_precision", "engine_profile", "engine_runner", "load_runner", "onnx_metadata", "onnx_runner", "openvino_runner",
           "torch_runner",
           "trt_runner"]
