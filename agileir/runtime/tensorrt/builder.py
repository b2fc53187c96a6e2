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
`tensorrt` is imported only inside the functions that need it.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ...io.atomic import write_bytes, write_json
from ..artifacts import SIDECAR_FORMAT, onnx_metadata, onnx_precision, sidecar_path
from .env import (FLAVOUR_NAMES, TensorRTUnavailable, check_flavour, import_trt, load_plugin_library,
                  plugin_library_name, require_gpu, version_tuple)

Shape = tuple[int, int, int, int]
INPUT = "lr"
PLUGIN_IMPLS = ("auto", "library", "qdp")
# TensorRT-RTX's ComputeCapability members by "major minor" digits; Turing (75) must be asked for explicitly
RTX_COMPUTE_CAPABILITIES = ("75", "80", "86", "89", "120", "121")
RTX_DEFAULT_TARGETS = "TensorRT-RTX default (8.0, 8.6, 8.9, 12.0 and later)"


def parse_compute_capabilities(text: str | None) -> tuple[str, ...]:
    """'86,89' or '8.6, 8.9' -> ('86', '89'); '' or None -> () (the flavour's default)."""
    if not text:
        return ()
    caps = []
    for item in text.split(","):
        cc = item.strip().replace(".", "").lower().removeprefix("sm_").removeprefix("sm")
        if cc not in RTX_COMPUTE_CAPABILITIES:
            raise ValueError(f"unknown compute capability {item.strip()!r} (TensorRT-RTX targets: "
                             f"{', '.join(RTX_COMPUTE_CAPABILITIES)})")
        if cc not in caps:
            caps.append(cc)
    return tuple(caps)


def parse_shape(text: str, channels: int = 3) -> Shape:
    """'1x3x256x256' or '256x256' (batch 1) -> (B, C, H, W)."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (1, channels) + dims
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(f"a shape must look like 1x3x256x256 or 256x256, got {text!r}")
    return dims[0], dims[1], dims[2], dims[3]


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class ShapeProfile:
    """min / opt / max of the input `lr` (B, 3, H, W). The graph pads to a window multiple itself, so any
    H, W >= 1 is valid; inputs beyond max are tiled by the runner."""

    min: Shape = (1, 3, 1, 1)
    opt: Shape = (1, 3, 256, 256)
    max: Shape = (1, 3, 512, 512)

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            if len(getattr(self, name)) != 4:
                raise ValueError(f"the {name} shape must have 4 dims (B, C, H, W)")
        if not (self.min[1] == self.opt[1] == self.max[1] == 3):
            raise ValueError("the profile's channel dim must be 3 (RGB)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"profile shapes must satisfy min <= opt <= max per dim, got "
                             f"{shape_text(self.min)} / {shape_text(self.opt)} / {shape_text(self.max)}")

    def to_dict(self) -> dict:
        return {"input": INPUT, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


# TensorRT-RTX 1.7 does not build the bundled AgileIR-light's FP16 attention form with a profile beyond 256x256: its
# fused attention (windows as heads, 256 tokens) asks for 36 MB more than any workspace limit it is given (measured
# with 4 and 8 GiB at 384x384 and 512x512). Engines of that form stop at 256x256; larger inputs are tiled.
RTX_ATTENTION_MAX_SIDE = 256


def fitted_profile(profile: ShapeProfile, form: str, flavour: str) -> ShapeProfile:
    """`profile`, its H and W capped at RTX_ATTENTION_MAX_SIDE for a TensorRT-RTX attention-form engine."""
    if form != "attention" or flavour != "rtx":
        return profile

    def capped(shape: Shape) -> Shape:
        return (shape[0], shape[1], min(shape[2], RTX_ATTENTION_MAX_SIDE), min(shape[3], RTX_ATTENTION_MAX_SIDE))
    return ShapeProfile(capped(profile.min), capped(profile.opt), capped(profile.max))


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
    import onnx

    from ...export.forms import form_of
    from ...models.load import file_sha256

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    proto = onnx.load(str(path), load_external_data=False)
    meta = onnx_metadata(proto)
    if "scale" not in meta:
        raise ValueError(f"{path.name} has no agileir metadata (scale); export it with agileir-export")
    return OnnxInfo(path, file_sha256(path), onnx_precision(proto), form_of(proto), meta)


def network_typing(graph_precision: str, requested: str | None, tensorrt_major: int,
                   flavour: str = "tensorrt") -> tuple[bool, list[str]]:
    """(strongly_typed, builder flags) for a graph of `graph_precision` built as `requested`."""
    requested = requested or graph_precision
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


def collecting_logger(trt, verbose: bool, echo: Callable[[str], None]):
    """The flavour's ILogger: shows warnings and errors (everything with `verbose`) and keeps them for the sidecar."""
    label = FLAVOUR_NAMES[flavour_of(trt)]
    shown = trt.ILogger.VERBOSE if verbose else trt.ILogger.WARNING

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.WARNING:
                self.messages.append(f"{severity.name}: {msg}")
            if severity <= shown:
                echo(f"[{label}] {severity.name}: {msg}")

    return Logger()


def flavour_of(trt) -> str:
    return "rtx" if trt.__name__.startswith("tensorrt_rtx") else "tensorrt"


def network_summary(trt, network) -> dict:
    """Layer counts of the parsed network: total, GSWA plugin layers, fused attentions, Q/DQ layers, by type."""
    types = [network.get_layer(i).type for i in range(network.num_layers)]
    plugin_types = {getattr(trt.LayerType, n) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, n)}
    attention_input = getattr(trt.LayerType, "ATTENTION_INPUT", None)
    by_type: dict[str, int] = {}
    for t in types:
        by_type[t.name] = by_type.get(t.name, 0) + 1
    return {"layers": len(types), "plugin_layers": sum(t in plugin_types for t in types),
            "attention_layers": sum(t == attention_input for t in types) if attention_input is not None else 0,
            "quantize_layers": sum(t == trt.LayerType.QUANTIZE for t in types),
            "dequantize_layers": sum(t == trt.LayerType.DEQUANTIZE for t in types),
            "attention_scale_layers": attention_scale_layers(trt, network),
            "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]))}


def attention_scale_layers(trt, network) -> int:
    """Layers the ONNX parser adds in front of each fused attention to scale Q and K by sqrt(scale): a
    multiply by a cast scalar constant (3 layers each, also at scale 1). Reported apart because no graph
    formulation removes them: they are the parser's fixed cost per ONNX `Attention` node."""
    attentions = fused_attentions(trt, network)
    if not attentions:
        return 0
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    return sum(_scalar_scaling(trt, producer, attention.get_input(k)) for attention in attentions
               for k in (0, 1))  # query, key


def fused_attentions(trt, network) -> list:
    """The IAttention of every fused attention in the parsed network (none where the TensorRT has no
    IAttention)."""
    attention_input = getattr(trt.LayerType, "ATTENTION_INPUT", None)
    found = []
    for i in range(network.num_layers if attention_input is not None else 0):
        layer = network.get_layer(i)
        if layer.type == attention_input:
            layer.__class__ = trt.IAttentionInputLayer
            found.append(layer.attention)
    return found


def _scalar_scaling(trt, producer: dict, tensor) -> int:
    """3 (multiply, cast, constant) when `tensor` is another tensor times a cast scalar constant, else 0."""
    multiply = producer.get(tensor.name)
    if multiply is None or multiply.type != trt.LayerType.ELEMENTWISE:
        return 0
    multiply.__class__ = trt.IElementWiseLayer
    if multiply.op != trt.ElementWiseOperation.PROD:
        return 0
    for k in range(multiply.num_inputs):
        cast = producer.get(multiply.get_input(k).name)
        if cast is None or cast.type != trt.LayerType.CAST:
            continue
        constant = producer.get(cast.get_input(0).name)
        if constant is None or constant.type != trt.LayerType.CONSTANT:
            continue
        if trt.volume(constant.get_output(0).shape) == 1:
            return 3
    return 0


def decompose_fp32_attention(trt, network) -> int:
    """Mark every attention whose query is FP32 decomposable; returns how many.

    TensorRT-RTX 1.7 has fused attention kernels for FP16/BF16 only: an FP32 IAttention that is not
    decomposable fails the build ("not supported by a dedicated kernel"). Decomposed, it runs as
    MatMul/SoftMax/MatMul layers inside the engine."""
    marked = 0
    for attention in fused_attentions(trt, network):
        if attention.get_input(0).dtype == trt.float32:
            attention.decomposable = True
            marked += 1
    return marked


def _set_targets(trt, config, caps: tuple[str, ...]) -> list[str]:
    """TensorRT-RTX target compute capabilities; returns them as 'X.Y' strings (or the default's description)."""
    if not caps:
        return [RTX_DEFAULT_TARGETS]
    config.num_compute_capabilities = len(caps)
    for i, cc in enumerate(caps):
        if not config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{cc}"), i):
            raise ValueError(f"TensorRT-RTX refused compute capability {cc}")
    return [f"{cc[:-1]}.{cc[-1]}" for cc in caps]


def _timing_cache(config, cache_path: Path | None, echo) -> None:
    if cache_path is None:
        return
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        echo(f"warning: {cache_path} is unusable (another TensorRT or GPU wrote it?): starting a new timing cache")
        fresh = config.create_timing_cache(b"")
        if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
            raise RuntimeError("TensorRT could not create a timing cache")


def _load_plugin(impl: str | None, library: Path | None, flavour: str) -> None:
    """Register the GSWA plugin before the parser runs: it looks the creator up while parsing."""
    if impl == "library":
        assert library is not None
        load_plugin_library(library, flavour)
    elif impl == "qdp":
        from .qdp import register

        register()


def _parse(trt, builder, info: OnnxInfo, typing: tuple[bool, bool], logger, echo: Callable[[str], None]):
    """(network, parser, parse seconds, network summary) of the ONNX file; typing = (strongly typed, Python
    AOT plugins). FP32 attentions are marked decomposable (decompose_fp32_attention)."""
    strongly_typed, aot_plugins = typing
    network_flags = 0
    strong = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # ignored (always on) in 11
    if strongly_typed and strong is not None:
        network_flags |= 1 << int(strong)
    aot = getattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS", None)  # TensorRT >= 10.9
    if aot_plugins and aot is not None:
        network_flags |= 1 << int(aot)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    start = time.time()
    if not parser.parse_from_file(str(info.path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise ValueError(f"{FLAVOUR_NAMES[flavour_of(trt)]}'s ONNX parser rejected {info.path.name}: "
                         f"{errors[0].splitlines()[0] if errors else 'no error reported'}")
    parse_s = time.time() - start
    summary = network_summary(trt, network)
    summary["decomposable_attentions"] = decompose_fp32_attention(trt, network)
    if summary["decomposable_attentions"]:
        echo(f"{summary['decomposable_attentions']} FP32 attentions marked decomposable (fused attention kernels "
             "are FP16/BF16 only): build the FP16 variant for fused attention")
    return network, parser, parse_s, summary


def _builder_config(trt, builder, network, options: BuildOptions, flags: list[str]):
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
    targets = _set_targets(trt, config, options.compute_capabilities) if flavour_of(trt) == "rtx" else None
    return config, input_name, targets


def _fit_profile(options: BuildOptions, form: str, flavour: str, echo: Callable[[str], None]) -> BuildOptions:
    fitted = fitted_profile(options.profile, form, flavour)
    if fitted == options.profile:
        return options
    echo(f"note: profile capped at {shape_text(fitted.max)} for the attention form on TensorRT-RTX (larger inputs "
         f"are tiled)")
    return replace(options, profile=fitted)


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None, options: BuildOptions = BuildOptions(),
                 echo: Callable[[str], None] = print) -> dict:
    """Build and write `engine_path` (default: the ONNX path with .plan) and its .json sidecar; returns the sidecar.

    Raises TensorRTUnavailable when the flavour's TensorRT (or, for TensorRT proper, a GPU) is missing, ValueError
    for inputs it cannot build."""
    from ...export.folder import check_listed_artifact
    from ...export.trt_compat import older_than_target

    flavour = check_flavour(options.flavour)
    check_listed_artifact(onnx_path)  # the export.json beside it agrees with the graph (scale, form, precision, opset)
    info = inspect_onnx(onnx_path)
    engine_path = Path(engine_path) if engine_path else info.path.with_suffix(".plan")
    if options.compute_capabilities and flavour != "rtx":
        raise ValueError("target compute capabilities are a TensorRT-RTX option (--target rtx); TensorRT builds "
                         "for the GPU it runs on")
    options = _fit_profile(options, info.form, flavour, echo)
    trt = import_trt(flavour)
    version = str(trt.__version__)
    if flavour == "tensorrt" and (older := older_than_target(info.metadata, version, info.path.name)):
        echo(older)
    gpu = require_gpu() if flavour == "tensorrt" else None  # TensorRT-RTX builds ahead of time on the CPU

    major = version_tuple(version)[0]
    strongly_typed, flags = network_typing(info.precision, options.precision, major, flavour)
    impl, library = resolve_plugin(info.form, options, version if flavour == "tensorrt" else None)
    logger = collecting_logger(trt, options.verbose, echo)
    _load_plugin(impl, library, flavour)

    builder = trt.Builder(logger)
    network, parser, parse_s, summary = _parse(trt, builder, info, (strongly_typed, impl == "qdp"), logger, echo)

    config, input_name, targets = _builder_config(trt, builder, network, options, flags)
    cache_path = options.timing_cache if flavour == "tensorrt" else None
    _timing_cache(config, cache_path, echo)

    where = gpu["name"] if gpu else f"the CPU (ahead of time, for {', '.join(targets or [])})"
    echo(f"building {engine_path.name} from {info.path.name} ({info.form} form, {options.precision or info.precision}, "
         f"{'strongly' if strongly_typed else 'weakly'} typed, {summary['layers']} layers) with "
         f"{FLAVOUR_NAMES[flavour]} {version} on {where} ...")
    start = time.time()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"{FLAVOUR_NAMES[flavour]} failed to build {engine_path.name} (see its log above)")
    build_s = time.time() - start
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(engine_path, memoryview(plan))
    if cache_path is not None:
        write_bytes(cache_path, memoryview(config.get_timing_cache().serialize()))

    from ...models.load import file_sha256

    meta = info.metadata
    sidecar: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "engine": engine_path.name,
        "engine_sha256": file_sha256(engine_path),
        "engine_bytes": engine_path.stat().st_size,
        "flavour": flavour,
        "tensorrt_version": version,
        "gpu": gpu,
        "target_compute_capabilities": targets,
        "precision": options.precision or info.precision,
        "onnx_precision": info.precision,
        "strongly_typed": strongly_typed,
        "builder_flags": flags,
        "profile": options.profile.to_dict() | {"input": input_name},
        "scale": int(meta["scale"]),
        "window": meta.get("window"),
        "form": info.form,
        "plugin": {"impl": impl, "library": library.name if library else None},
        "network": summary,
        "builder_warnings": logger.messages[:50],
        "source_onnx": {"file": info.path.name, "sha256": info.sha256},
        "source_checkpoint": meta.get("source_checkpoint"),
        "preset": meta.get("preset"),
        "workspace_mib": options.workspace_mib,
        "builder_optimization_level": options.optimization_level,
        "timing_cache": str(cache_path) if cache_path else None,
        "parse_s": round(parse_s, 2),
        "build_s": round(build_s, 1),
    }
    write_json(sidecar_path(engine_path), sidecar)
    echo(f"wrote {engine_path} ({sidecar['engine_bytes'] / 1e6:.1f} MB, {build_s:.0f} s) and "
         f"{sidecar_path(engine_path).name}")
    return sidecar


__all__ = ["BuildOptions", "ShapeProfile", "OnnxInfo", "TensorRTUnavailable", "build_engine", "inspect_onnx",
           "network_summary", "network_typing", "parse_compute_capabilities", "parse_shape", "resolve_plugin",
           "trtexec_command", "trtexec_line"]
