"""Build a TensorRT engine (`engine.plan` + `engine.json`) from an ONNX graph written by agileir-export or a
precision variant of it, and the equivalent `trtexec` command line.

Typing follows the graph, as TensorRT 11 requires:

* TensorRT 11: always a strongly typed network (the flag is accepted and ignored); no precision flags exist.
* TensorRT 10: strongly typed for Q/DQ (INT8) and FP16 graphs and for FP32 graphs built as FP32; the one
  weakly typed case is an FP32 graph the user asks to build as fp16 (`BuilderFlag.FP16`).

One optimisation profile over batch and H x W of the input `lr`; a timing cache file (read, then updated
atomically); a workspace limit; the builder optimisation level. For `model.plugin.onnx` the GSWA plugin
comes from the C++ library (`load_library`) or the Python QDP (`agileir.runtime.tensorrt.qdp.register`, TensorRT >= 10.9).
`tensorrt` is imported only inside the functions that need it.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ...atomic import write_bytes, write_json
from ..artifacts import SIDECAR_FORMAT, onnx_metadata, onnx_precision, sidecar_path
from .env import TensorRTUnavailable, load_plugin_library, require_gpu, require_tensorrt, version_tuple

Shape = tuple[int, int, int, int]
INPUT = "lr"
PLUGIN_IMPLS = ("auto", "library", "qdp")


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


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    sha256: str
    precision: str
    form: str  # "standard" | "plugin"
    metadata: dict


def inspect_onnx(path: str | Path) -> OnnxInfo:
    """Precision (from the graph), form and agileir metadata of an ONNX file."""
    import onnx

    from ...models.gswa_node import gswa_nodes
    from ...models.load import file_sha256

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    proto = onnx.load(str(path), load_external_data=False)
    meta = onnx_metadata(proto)
    if "scale" not in meta:
        raise ValueError(f"{path.name} has no agileir metadata (scale); export it with agileir-export")
    form = "plugin" if gswa_nodes(proto) else "standard"
    return OnnxInfo(path, file_sha256(path), onnx_precision(proto), form, meta)


def network_typing(graph_precision: str, requested: str | None, tensorrt_major: int) -> tuple[bool, list[str]]:
    """(strongly_typed, builder flags) for a graph of `graph_precision` built as `requested`."""
    requested = requested or graph_precision
    if requested == graph_precision:
        return True, []
    if graph_precision == "fp32" and requested == "fp16":
        if tensorrt_major >= 11:
            raise ValueError("TensorRT 11 builds only strongly typed networks: build the FP16 ONNX variant "
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
    lib = options.plugin_library or find_plugin_library()
    if options.plugin_library is not None and not options.plugin_library.is_file():
        raise FileNotFoundError(f"plugin library not found: {options.plugin_library}")
    if options.plugin == "library" or (options.plugin == "auto" and lib is not None):
        if lib is None:
            raise ValueError(f"{LIBRARY_NAME} not found: build it (docs/plugin.md) or pass --plugin-lib")
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


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None, options: BuildOptions = BuildOptions(),
                 echo: Callable[[str], None] = print) -> dict:
    """Build and write `engine_path` (default: the ONNX path with .plan) and its .json sidecar; returns the sidecar.

    Raises TensorRTUnavailable when TensorRT or a GPU is missing, ValueError for inputs it cannot build."""
    info = inspect_onnx(onnx_path)
    engine_path = Path(engine_path) if engine_path else info.path.with_suffix(".plan")
    version = require_tensorrt()
    gpu = require_gpu()
    import tensorrt as trt

    major = version_tuple(version)[0]
    strongly_typed, flags = network_typing(info.precision, options.precision, major)
    impl, library = resolve_plugin(info.form, options, version)
    logger = trt.Logger(trt.Logger.VERBOSE if options.verbose else trt.Logger.WARNING)
    if impl == "library":
        assert library is not None
        load_plugin_library(library)
    elif impl == "qdp":
        from .qdp import register

        register()

    builder = trt.Builder(logger)
    network_flags = 0
    strong = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # ignored (always on) in 11
    if strongly_typed and strong is not None:
        network_flags |= 1 << int(strong)
    aot = getattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS", None)  # TensorRT >= 10.9
    if impl == "qdp" and aot is not None:
        network_flags |= 1 << int(aot)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(info.path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise ValueError(f"TensorRT's ONNX parser rejected {info.path.name}: "
                         f"{errors[0].splitlines()[0] if errors else 'no error reported'}")

    config = builder.create_builder_config()
    for flag in flags:  # only BuilderFlag.FP16 on TensorRT 10 (network_typing refuses it on 11)
        builder_flag = getattr(trt.BuilderFlag, flag, None)
        if builder_flag is None:
            raise ValueError(f"TensorRT {version} has no BuilderFlag.{flag}")
        config.set_flag(builder_flag)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    config.builder_optimization_level = options.optimization_level
    profile = builder.create_optimization_profile()
    input_name = network.get_input(0).name
    p = options.profile
    profile.set_shape(input_name, trt.Dims(list(p.min)), trt.Dims(list(p.opt)), trt.Dims(list(p.max)))
    config.add_optimization_profile(profile)
    cache_path = options.timing_cache
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            echo(f"warning: {cache_path} was written by another TensorRT or GPU: starting a new timing cache")
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    echo(f"building {engine_path.name} from {info.path.name} ({info.form} form, {options.precision or info.precision}, "
         f"{'strongly' if strongly_typed else 'weakly'} typed) with TensorRT {version} on {gpu['name']} ...")
    start = time.time()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build {engine_path.name} (see the TensorRT log above)")
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
        "tensorrt_version": version,
        "gpu": gpu,
        "precision": options.precision or info.precision,
        "onnx_precision": info.precision,
        "strongly_typed": strongly_typed,
        "builder_flags": flags,
        "profile": p.to_dict() | {"input": input_name},
        "scale": int(meta["scale"]),
        "window": meta.get("window"),
        "form": info.form,
        "plugin": {"impl": impl, "library": library.name if library else None},
        "source_onnx": {"file": info.path.name, "sha256": info.sha256},
        "source_checkpoint": meta.get("source_checkpoint"),
        "preset": meta.get("preset"),
        "workspace_mib": options.workspace_mib,
        "builder_optimization_level": options.optimization_level,
        "timing_cache": str(cache_path) if cache_path else None,
        "build_s": round(build_s, 1),
    }
    write_json(sidecar_path(engine_path), sidecar)
    echo(f"wrote {engine_path} ({sidecar['engine_bytes'] / 1e6:.1f} MB, {build_s:.0f} s) and "
         f"{sidecar_path(engine_path).name}")
    return sidecar


__all__ = ["BuildOptions", "ShapeProfile", "OnnxInfo", "TensorRTUnavailable", "build_engine", "inspect_onnx",
           "network_typing", "parse_shape", "resolve_plugin", "trtexec_command", "trtexec_line"]
