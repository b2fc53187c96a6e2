"""Build a TensorRT engine (`engine.plan` + `engine.json`) from an ONNX graph written by agileir-export or a
precision variant of it, and the equivalent `trtexec` command line, for either flavour (env.py): the code is
one; the flavour's module is imported and passed through.

Typing follows the graph, as TensorRT 11 and TensorRT-RTX require:

* TensorRT 11 and TensorRT-RTX: always a strongly typed network; no precision flags exist.
* TensorRT 10: strongly typed for Q/DQ (INT8) and FP16 graphs and for FP32 graphs built as FP32; the one
  weakly typed case is an FP32 graph the user asks to build as fp16 (`BuilderFlag.FP16`).

TensorRT-RTX builds ahead of time without a GPU, for target compute capabilities (default: TensorRT-RTX's own,
8.0/8.6/8.9/12.0); the engine is specialised just in time on the user's GPU. It times no tactics at build time,
so no timing cache is used; its JIT results go to a runtime cache file beside the engine (the runner's).

One optimisation profile over batch and H x W of the input `lr`; a timing cache file (read, then updated
atomically); a workspace limit; the builder optimisation level. For `model.plugin.onnx` the GSWA plugin
comes from the C++ library (`load_library`) or the Python QDP (`agileir.runtime.tensorrt.qdp.register`, TensorRT >= 10.9).
`tensorrt` is imported only inside the functions that need it. The build's phases are reported through the
builder's IProgressMonitor (agileir.io.progress: a line per phase, a bar with its steps).

Modules: profile.py (input shapes), config.py (BuildOptions, typing, plugin, builder config, trtexec), network.py
(logger, parsing, layer counts), this one (the build). Their public names are importable from here.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ...io.atomic import write_bytes, write_json
from ...io.progress import Progress, as_progress
from ..artifacts import SIDECAR_FORMAT, sidecar_path
from .config import (PLUGIN_IMPLS, BuildOptions, OnnxInfo, builder_config, fit_profile, inspect_onnx,  # noqa: F401
                     load_plugin, network_typing, resolve_plugin, set_targets, trtexec_command, trtexec_line,
                     use_timing_cache)
from .env import FLAVOUR_NAMES, TensorRTUnavailable, check_flavour, import_trt, require_gpu, version_tuple  # noqa: F401
from .network import (attention_scale_layers, collecting_logger, decompose_fp32_attention, flavour_of,  # noqa: F401
                      fused_attentions, network_summary, parse_network)
from .profile import (INPUT, RTX_ATTENTION_MAX_SIDE, RTX_COMPUTE_CAPABILITIES, RTX_DEFAULT_TARGETS,  # noqa: F401
                      Shape, ShapeProfile, fitted_profile, parse_compute_capabilities, parse_shape, shape_text)


def progress_monitor(trt, progress: Progress, label: str):
    """An IProgressMonitor reporting the builder's top-level phases as stages (a bar where TensorRT gives the
    phase's step count); nested phases advance silently. None where the flavour has no IProgressMonitor."""
    base: Any = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):
        def __init__(self):
            base.__init__(self)
            self.open: dict[str, tuple] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                context = progress.stage(phase_name, label, total=num_steps or None)
                self.open[phase_name] = (context, context.__enter__())

        def step_complete(self, phase_name, step):
            if phase_name in self.open:
                self.open[phase_name][1].advance()
            return True  # never cancel

        def phase_finish(self, phase_name):
            if phase_name in self.open:
                self.open.pop(phase_name)[0].__exit__(None, None, None)

    return Monitor()


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None, options: BuildOptions = BuildOptions(),
                 echo: Callable[[str], None] | None = print, progress: Progress | None = None) -> dict:
    """Build and write `engine_path` (default: the ONNX path with .plan) and its .json sidecar; returns the sidecar.
    Lines go to `progress` (agileir.io.progress), else to `echo`.

    Raises TensorRTUnavailable when the flavour's TensorRT (or, for TensorRT proper, a GPU) is missing, ValueError
    for inputs it cannot build."""
    from ...export.folder import check_listed_artifact
    from ...export.trt_compat import older_than_target

    progress = as_progress(progress, echo)
    echo = progress.note
    flavour = check_flavour(options.flavour)
    check_listed_artifact(onnx_path)  # the export.json beside it agrees with the graph (scale, form, precision, opset)
    info = inspect_onnx(onnx_path)
    engine_path = Path(engine_path) if engine_path else info.path.with_suffix(".plan")
    if options.compute_capabilities and flavour != "rtx":
        raise ValueError("target compute capabilities are a TensorRT-RTX option (--target rtx); TensorRT builds "
                         "for the GPU it runs on")
    options = fit_profile(options, info.form, flavour, echo)
    trt = import_trt(flavour)
    version = str(trt.__version__)
    if flavour == "tensorrt" and (older := older_than_target(info.metadata, version, info.path.name)):
        echo(older)
    gpu = require_gpu() if flavour == "tensorrt" else None  # TensorRT-RTX builds ahead of time on the CPU

    strongly_typed, flags = network_typing(info.precision, options.precision, version_tuple(version)[0], flavour)
    impl, library = resolve_plugin(info.form, options, version if flavour == "tensorrt" else None)
    logger = collecting_logger(trt, options.verbose, echo)
    load_plugin(impl, library, flavour)

    builder = trt.Builder(logger)
    with progress.stage("parse", engine_path.name, what=f"parsing {info.path.name}"):
        network, parser, parse_s, summary = parse_network(trt, builder, info, (strongly_typed, impl == "qdp"),
                                                          logger, echo)
    config, input_name, targets = builder_config(trt, builder, network, options, flags)
    monitor = progress_monitor(trt, progress, engine_path.name)
    if monitor is not None:
        config.progress_monitor = monitor
    cache_path = options.timing_cache if flavour == "tensorrt" else None
    use_timing_cache(config, cache_path, echo)

    where = gpu["name"] if gpu else f"the CPU (ahead of time, for {', '.join(targets or [])})"
    typed = "strongly" if strongly_typed else "weakly"
    with progress.stage("build", engine_path.name, what=(
            f"building from {info.path.name} ({info.form} form, {options.precision or info.precision}, {typed} "
            f"typed, {summary['layers']} layers) with {FLAVOUR_NAMES[flavour]} {version} on {where}")):
        start = time.time()
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"{FLAVOUR_NAMES[flavour]} failed to build {engine_path.name} (see its log above)")
        build_s = time.time() - start
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(engine_path, memoryview(plan))
    if cache_path is not None:
        write_bytes(cache_path, memoryview(config.get_timing_cache().serialize()))
    facts = {"flavour": flavour, "tensorrt_version": version, "gpu": gpu, "target_compute_capabilities": targets,
             "strongly_typed": strongly_typed, "builder_flags": flags, "input": input_name, "impl": impl,
             "library": library, "network": summary, "warnings": logger.messages[:50], "cache": cache_path,
             "parse_s": parse_s, "build_s": build_s}
    sidecar = _sidecar(engine_path, info, options, facts)
    write_json(sidecar_path(engine_path), sidecar)
    echo(f"wrote {engine_path} ({sidecar['engine_bytes'] / 1e6:.1f} MB, {build_s:.0f} s) and "
         f"{sidecar_path(engine_path).name}")
    return sidecar


def _sidecar(engine_path: Path, info: OnnxInfo, options: BuildOptions, facts: dict) -> dict[str, Any]:
    """engine.json: the engine, how it was built, from what."""
    from ...models.load import file_sha256

    meta, library, cache_path = info.metadata, facts["library"], facts["cache"]
    return {
        "format": SIDECAR_FORMAT,
        "engine": engine_path.name,
        "engine_sha256": file_sha256(engine_path),
        "engine_bytes": engine_path.stat().st_size,
        "flavour": facts["flavour"],
        "tensorrt_version": facts["tensorrt_version"],
        "gpu": facts["gpu"],
        "target_compute_capabilities": facts["target_compute_capabilities"],
        "precision": options.precision or info.precision,
        "onnx_precision": info.precision,
        "strongly_typed": facts["strongly_typed"],
        "builder_flags": facts["builder_flags"],
        "profile": options.profile.to_dict() | {"input": facts["input"]},
        "scale": int(meta["scale"]),
        "window": meta.get("window"),
        "form": info.form,
        "plugin": {"impl": facts["impl"], "library": library.name if library else None},
        "network": facts["network"],
        "builder_warnings": facts["warnings"],
        "source_onnx": {"file": info.path.name, "sha256": info.sha256},
        "source_checkpoint": meta.get("source_checkpoint"),
        "preset": meta.get("preset"),
        "workspace_mib": options.workspace_mib,
        "builder_optimization_level": options.optimization_level,
        "timing_cache": str(cache_path) if cache_path else None,
        "parse_s": round(facts["parse_s"], 2),
        "build_s": round(facts["build_s"], 1),
    }
