"""What an engine build is configured with: BuildOptions, the ONNX file's facts (OnnxInfo), the network's typing,
the GSWA plugin, the equivalent trtexec command, and the builder config (flags, workspace, optimisation level,
profile, TensorRT-RTX targets, timing cache). `tensorrt` is passed in, never imported here."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..artifacts import onnx_metadata, onnx_precision, read_onnx
from .env import FLAVOUR_NAMES, load_plugin_library, plugin_library_name, version_tuple
from .network import flavour_of
from .profile import (INPUT, RTX_DEFAULT_TARGETS, ShapeProfile, fitted_profile, shape_text)

PLUGIN_IMPLS = ("auto", "library", "qdp")


@dataclass(frozen=True)
class BuildOptions:
    profile: ShapeProfile = field(default_factory=ShapeProfile)
    precision: str | None = None  # None: the graph's; "fp16" on an FP32 graph -> weak typing (TensorRT 10 only)
    workspace_mib: int = 4096
    optimization_level: int = 3  # TensorRT's default; 0..5
    timing_cache: Path | None = None
    plugin: str = "auto"  # for the plugin form: "library" (C++), "qdp" (Python AOT) or "auto" (library if built)
    plugin_library: Path | None = None
    verbose: bool = False
    flavour: str = "tensorrt"  # or "rtx" (TensorRT for RTX: ahead-of-time build, no GPU needed)
    compute_capabilities: tuple[str, ...] = ()  # rtx targets, e.g. ("86", "89"); (): TensorRT-RTX's default


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    precision: str
    form: str  # one of agileir.export.forms.FORMS
    metadata: dict


def inspect_onnx(path: str | Path) -> OnnxInfo:
    """Precision (from the graph), form and agileir metadata of an ONNX file."""
    from ...export.forms import form_of
    from ...models.load import file_sha256

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    proto = read_onnx(path)
    meta = onnx_metadata(proto)
    if "scale" not in meta:
        raise ValueError(f"{path.name} has no agileir metadata (scale); export it with agileir-export")
    return OnnxInfo(path, file_sha256(path), onnx_precision(proto), form_of(proto), meta)


def network_typing(graph_precision: str, requested: str | None, tensorrt_major: int,
                   flavour: str = "tensorrt") -> tuple[bool, list[str]]:
    """(strongly_typed, builder flags) for a graph of `graph_precision` built as `requested`."""
    requested = requested or graph_precision
    if tensorrt_major < 9 and flavour == "tensorrt":  # TensorRT 8.x has no strongly typed networks: the builder
        # flags allow the graph's own precision (a Q/DQ graph needs INT8, float16 tensors need FP16)
        if requested not in (graph_precision, "fp16") or (requested == "fp16" and graph_precision == "int8"):
            raise ValueError(f"a {graph_precision} graph cannot be built as {requested}: build the {requested} ONNX "
                             "variant")
        return False, {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[requested]
    if requested == graph_precision:
        return True, []
    if graph_precision == "fp32" and requested == "fp16":
        if tensorrt_major >= 11 or flavour == "rtx":
            name = "TensorRT-RTX" if flavour == "rtx" else "TensorRT 11"
            raise ValueError(f"{name} builds only strongly typed networks: build the FP16 ONNX variant "
                             "(precision comes from the graph) instead of --precision fp16 on an FP32 graph")
        return False, ["FP16"]
    raise ValueError(f"a {graph_precision} graph cannot be built as {requested}: build the {requested} ONNX variant")


def resolve_plugin(form: str, options: BuildOptions, tensorrt_version: str | None) -> tuple[str | None, Path | None]:
    """(impl, library path) for the GSWA plugin: (None, None) for the standard form."""
    from ...plugins import LIBRARY_NAME, find_plugin_library

    if form != "plugin":
        return None, None
    if options.plugin not in PLUGIN_IMPLS:
        raise ValueError(f"--plugin must be one of {PLUGIN_IMPLS}, got {options.plugin!r}")
    name = plugin_library_name(options.flavour)
    lib = options.plugin_library or find_plugin_library(name)
    if options.plugin_library is not None and not options.plugin_library.is_file():
        raise FileNotFoundError(f"plugin library not found: {options.plugin_library}")
    if options.flavour == "rtx" and options.plugin == "qdp":
        raise ValueError("TensorRT-RTX 1.7 has no Python plugins (tensorrt_rtx.plugin lacks its bindings): use "
                         f"{name} (cmake -DAGILEIR_TRT_FLAVOUR=rtx, docs/plugin.md)")
    if options.plugin == "library" or (options.plugin == "auto" and lib is not None) or options.flavour == "rtx":
        if lib is None:
            raise ValueError(f"{name} not found: build it (docs/plugin.md) or pass --plugin-lib")
        return "library", lib
    if tensorrt_version is not None and version_tuple(tensorrt_version) < (10, 9):
        raise ValueError(f"TensorRT {tensorrt_version} has no Python AOT plugins (needs 10.9): build "
                         f"{LIBRARY_NAME} (docs/plugin.md) and pass --plugin-lib")
    return "qdp", None


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions = BuildOptions(),
                    graph_precision: str = "fp32", form: str = "standard", tensorrt_major: int = 10,
                    plugin_library: str | Path | None = None) -> list[str]:
    """The trtexec command that builds the same engine as :func:`build_engine` (a Python QDP cannot be loaded
    by trtexec, so the plugin form always names the C++ library)."""
    strongly_typed, flags = network_typing(graph_precision, options.precision, tensorrt_major)
    p = options.profile
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
           f"--minShapes={INPUT}:{shape_text(p.min)}", f"--optShapes={INPUT}:{shape_text(p.opt)}",
           f"--maxShapes={INPUT}:{shape_text(p.max)}"]
    if strongly_typed:
        cmd.append("--stronglyTyped")  # required on TensorRT 10, accepted (always on) on 11
    cmd += [f"--{flag.lower()}" for flag in flags]
    if form == "plugin":
        from ...plugins import find_plugin_library

        lib = plugin_library or options.plugin_library or find_plugin_library() or "build/plugins/libagileir_trt_plugins.so"
        cmd.append(f"--dynamicPlugins={lib}")
    cmd += [f"--memPoolSize=workspace:{options.workspace_mib}M",
            f"--builderOptimizationLevel={options.optimization_level}"]
    if options.timing_cache:
        cmd.append(f"--timingCacheFile={options.timing_cache}")
    cmd.append("--skipInference")
    return cmd


def trtexec_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def set_targets(trt, config, caps: tuple[str, ...]) -> list[str]:
    """TensorRT-RTX target compute capabilities; returns them as 'X.Y' strings (or the default's description)."""
    if not caps:
        return [RTX_DEFAULT_TARGETS]
    config.num_compute_capabilities = len(caps)
    for i, cc in enumerate(caps):
        if not config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{cc}"), i):
            raise ValueError(f"TensorRT-RTX refused compute capability {cc}")
    return [f"{cc[:-1]}.{cc[-1]}" for cc in caps]


def use_timing_cache(config, cache_path: Path | None, echo) -> None:
    if cache_path is None:
        return
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        echo(f"warning: {cache_path} is unusable (another TensorRT or GPU wrote it?): starting a new timing cache")
        fresh = config.create_timing_cache(b"")
        if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
            raise RuntimeError("TensorRT could not create a timing cache")


def load_plugin(impl: str | None, library: Path | None, flavour: str) -> None:
    """Register the GSWA plugin before the parser runs: it looks the creator up while parsing."""
    if impl == "library":
        assert library is not None
        load_plugin_library(library, flavour)
    elif impl == "qdp":
        from .qdp import register

        register()


def builder_config(trt, builder, network, options: BuildOptions, flags: list[str]):
    """(builder config, input name, rtx targets or None): flags, workspace, optimisation level, profile."""
    config = builder.create_builder_config()
    for flag in flags:  # only BuilderFlag.FP16 on TensorRT 10 (network_typing refuses it elsewhere)
        builder_flag = getattr(trt.BuilderFlag, flag, None)
        if builder_flag is None:
            raise ValueError(f"{FLAVOUR_NAMES[flavour_of(trt)]} {trt.__version__} has no BuilderFlag.{flag}")
        config.set_flag(builder_flag)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    config.builder_optimization_level = options.optimization_level
    profile = builder.create_optimization_profile()
    input_name = network.get_input(0).name
    p = options.profile
    profile.set_shape(input_name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max)))
    config.add_optimization_profile(profile)
    targets = set_targets(trt, config, options.compute_capabilities) if flavour_of(trt) == "rtx" else None
    return config, input_name, targets


def fit_profile(options: BuildOptions, form: str, flavour: str, echo: Callable[[str], None]) -> BuildOptions:
    fitted = fitted_profile(options.profile, form, flavour)
    if fitted == options.profile:
        return options
    echo(f"note: profile capped at {shape_text(fitted.max)} for the attention form on TensorRT-RTX (larger inputs "
         f"are tiled)")
    return replace(options, profile=fitted)
