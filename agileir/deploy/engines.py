"""The engine step of an export: an engine per ONNX file where the target's TensorRT can build it here, otherwise
the exact commands that build them where it can."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class EngineTarget:
    """Which TensorRT flavour builds the engines: 'tensorrt' (on the GPU that runs them) or 'rtx' (TensorRT for
    RTX, ahead of time on any machine), and for rtx the compute capabilities to target (empty: its defaults)."""
    flavour: str = "tensorrt"
    compute_capabilities: tuple[str, ...] = ()


@dataclass
class EngineStep:
    built: list[Path] = field(default_factory=list)  # engines written (each with its engine.json)
    commands: list[str] = field(default_factory=list)  # what to run elsewhere when nothing could be built here
    reason: str | None = None  # why no engine was built here


def engine_step(onnx_files: list[Path], target: EngineTarget = EngineTarget(),
                echo: Callable[[str], None] = print, progress=None) -> EngineStep:
    """Build an engine per ONNX file where the target's TensorRT (and, for TensorRT proper, a GPU) exists;
    otherwise return the reason and the commands that build them where they can (the ONNX files are ready).
    TensorRT-RTX builds here, on the CPU; its absence raises TensorRTUnavailable (a missing capability)."""
    from ..runtime.tensorrt.builder import BuildOptions, build_engine
    from ..runtime.tensorrt.env import FLAVOUR_NAMES, TensorRTUnavailable, require_gpu, require_tensorrt

    step = EngineStep()
    if target.flavour == "rtx":
        require_tensorrt("rtx")
    else:
        try:
            require_tensorrt()
            require_gpu()
        except TensorRTUnavailable as e:
            step.reason, step.commands = str(e), build_commands(onnx_files)
            return step
    for path in onnx_files:
        options = BuildOptions(flavour=target.flavour, compute_capabilities=target.compute_capabilities,
                               plugin_library=_plugin_library(path, target.flavour, echo))
        sidecar = build_engine(path, path.with_suffix(".plan"), options, echo=echo, progress=progress)
        step.built.append(path.with_suffix(".plan"))
        targets = sidecar.get("target_compute_capabilities")
        echo(f"engine: {path.with_suffix('.plan')} ({FLAVOUR_NAMES[target.flavour]}, {sidecar['precision']}, "
             f"{sidecar['form']} form{', for ' + ', '.join(targets) if targets else ''})")
    return step


def _plugin_library(onnx_path: Path, flavour: str, echo) -> Path | None:
    """The GSWA plugin library a plugin-form graph needs (found, or built on first use); None for other forms."""
    from ..runtime.tensorrt.builder import inspect_onnx
    from ..runtime.tensorrt.env import plugin_library_for

    return plugin_library_for(inspect_onnx(onnx_path).form, flavour, echo=echo)


def build_commands(onnx_files: list[Path]) -> list[str]:
    """`agileir build` and the equivalent trtexec line for each ONNX file."""
    from ..runtime.tensorrt.builder import inspect_onnx, trtexec_command, trtexec_line

    lines = []
    for path in onnx_files:
        info = inspect_onnx(path)
        engine = path.with_suffix(".plan")
        lines.append(f"agileir build {path} -o {engine}")
        major = _target_major(info.metadata)
        cmd = trtexec_command(path, engine, graph_precision=info.precision, form=info.form, tensorrt_major=major)
        lines.append(f"  or: {trtexec_line(cmd)}" + (f"  (TensorRT {major}.x)" if major < 10 else ""))
    return lines


def _target_major(metadata: dict) -> int:
    """The TensorRT major release an export's --compat target names (metadata "compat"), else 10."""
    entry = metadata.get("compat") if isinstance(metadata.get("compat"), dict) else {}
    wanted = str(entry.get("tensorrt") or "")
    return int(wanted.split(".")[0]) if wanted.split(".")[0].isdigit() else 10
