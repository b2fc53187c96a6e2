"""The engine build job of `agileir build`: an exported ONNX file -> a TensorRT / TensorRT-RTX engine and its
engine.json, from one BuildRequest.

    request = BuildRequest(Path("out/model.onnx"), options=BuildOptions(flavour="rtx"))
    sidecar = build_from_request(request, claim_build(request))
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable


def _default_options():
    from ..runtime.tensorrt.builder import BuildOptions

    return BuildOptions()


@dataclass(frozen=True)
class BuildRequest:
    """What to build: `onnx` an agileir-export graph (either form, any precision); `engine` the engine file (.plan /
    .engine; None: the ONNX path with .plan), its description beside it as .json; `options` an
    agileir.runtime.tensorrt.builder.BuildOptions (profile, precision, workspace, flavour, plugin, ...; its
    timing_cache None: timing.cache beside the engine)."""

    onnx: Path
    engine: Path | None = None
    options: Any = field(default_factory=_default_options)

    def engine_path(self) -> Path:
        from ..runtime.artifacts import ENGINE_SUFFIXES

        engine = Path(self.engine) if self.engine else Path(self.onnx).with_suffix(".plan")
        if engine.suffix not in ENGINE_SUFFIXES:
            raise ValueError(f"the engine file must end in {' or '.join(ENGINE_SUFFIXES)}: {engine}")
        return engine

    def resolved_options(self):
        """`options` with the timing cache beside the engine when none is given."""
        if self.options.timing_cache is not None:
            return self.options
        return replace(self.options, timing_cache=self.engine_path().parent / "timing.cache")

    def trtexec_line(self) -> str:
        """The equivalent trtexec command (TensorRT only; '' for TensorRT-RTX, which has no trtexec)."""
        from ..runtime.tensorrt.builder import inspect_onnx, trtexec_command, trtexec_line

        options = self.resolved_options()
        if options.flavour != "tensorrt":
            return ""
        info = inspect_onnx(self.onnx)
        return trtexec_line(trtexec_command(info.path, self.engine_path(), options, info.precision, info.form))


def claim_build(request: BuildRequest, overwrite: bool = False):
    """The build's OutputGate: the ONNX file and a given plugin library its inputs, the engine and its
    description claimed now, before any work."""
    from ..io.gate import OutputGate
    from ..runtime.artifacts import sidecar_path

    engine = request.engine_path()
    gate = OutputGate([request.onnx, request.options.plugin_library], overwrite)
    gate.claim(engine, "engine", "the engine")
    gate.claim(sidecar_path(engine), "engine description", "the engine description")
    return gate


def build_from_request(request: BuildRequest, gate, echo: Callable[[str], None] = print,
                       progress: Any = None) -> dict:
    """Build the engine of `request` through `gate` (claim_build): the plugin form's library found or built on
    first use when none is given; returns the engine.json content. Raises TensorRTUnavailable (one line) when
    this machine cannot build it (request.trtexec_line() then says how to, elsewhere)."""
    from ..runtime.artifacts import sidecar_path
    from ..runtime.tensorrt.builder import build_engine, inspect_onnx
    from ..runtime.tensorrt.env import plugin_library_for

    echo = progress.note if progress is not None else echo  # one place for the build's lines
    engine, options = request.engine_path(), request.resolved_options()
    info = inspect_onnx(request.onnx)
    if options.plugin_library is None:  # the plugin form's library: found, or built on first use
        library = plugin_library_for(info.form, options.flavour, options.plugin, echo=echo)
        options = replace(options, plugin_library=library)
    kwargs = {"progress": progress} if progress is not None else {}
    with gate.publishing():  # each file's ledger line durable before it is renamed into place
        sidecar = build_engine(info.path, engine, options, echo=echo, **kwargs)
    gate.record(engine, "engine")
    gate.record(sidecar_path(engine), "engine description")
    return sidecar


__all__ = ["BuildRequest", "build_from_request", "claim_build"]
