"""What `--device` means, the same for every backend (docs/runtime.md, "Devices").

`auto`: CUDA when the backend can use it here, else the CPU; the runner says which it chose in one line
(`Runner.device_line`). `cpu`: the CPU. `cuda` / `cuda:N`: that GPU, or DeviceUnavailable (CLI exit 3) naming
what is missing; nothing falls back silently. TensorRT engines run only on a GPU (`cpu` is refused).

Nothing here imports torch, onnxruntime or TensorRT at module level.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import DeviceUnavailable

CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"
DEVICE_HELP = ("where the model runs, for every backend: auto (CUDA when usable here, else the CPU; one line says "
               "which), cpu, cuda or cuda:N (exit 3 when not usable here)")


@dataclass(frozen=True)
class Device:
    """A parsed --device: kind 'auto', 'cpu' or 'cuda'; index the CUDA ordinal (0 unless cuda:N)."""
    kind: str
    index: int = 0
    text: str = ""  # as the user wrote it (normalised)


def parse_device(text: str | None) -> Device:
    """'auto' (or None/''), 'cpu', 'cuda', 'cuda:N' -> Device (ValueError otherwise)."""
    value = (text or "auto").strip().lower()
    if value in ("auto", "cpu", "cuda"):
        return Device(value, 0, value)
    kind, _, index = value.partition(":")
    if kind == "cuda" and index.isdigit():
        return Device("cuda", int(index), value)
    raise ValueError(f"unknown device {text!r} (auto, cpu, cuda or cuda:N)")


def ort_providers(device: str | None, backend: str = "onnxruntime") -> list:
    """The execution providers an ONNX Runtime session is opened with for `device`: CPU only for `cpu` (and for
    the onnxruntime-cpu backend); CUDA (device_id N) then CPU for `cuda[:N]`, DeviceUnavailable when this
    onnxruntime has no CUDA provider; for `auto`, CUDA first only where onnxruntime has it."""
    wanted = parse_device(device)
    if backend == "onnxruntime-cpu":
        if wanted.kind == "cuda":
            raise ValueError(f"--backend onnxruntime-cpu runs on the CPU; it cannot take --device {wanted.text}")
        return [CPU_EP]
    if wanted.kind == "cpu":
        return [CPU_EP]
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA_EP not in available:
        if wanted.kind == "cuda":
            raise DeviceUnavailable(
                f"--device {wanted.text}: CUDA is not available to ONNX Runtime here (onnxruntime {ort.__version__} "
                f"has {', '.join(available)}; CUDA needs the onnxruntime-gpu package and an NVIDIA GPU); "
                "use --device cpu")
        return [CPU_EP]
    return [(CUDA_EP, {"device_id": wanted.index}), CPU_EP]


def check_session_device(session, device: str | None, name: str) -> str:
    """The device an ONNX Runtime session runs on ('cuda:N' or 'cpu'); DeviceUnavailable when `device` asked for
    CUDA and the CUDA provider did not start (onnxruntime-gpu without a usable GPU or CUDA libraries)."""
    wanted = parse_device(device)
    active = session.get_providers()
    if active and active[0] == CUDA_EP:
        options = session.get_provider_options().get(CUDA_EP, {})
        return f"cuda:{options.get('device_id', wanted.index)}"
    if wanted.kind == "cuda":
        raise DeviceUnavailable(f"--device {wanted.text}: ONNX Runtime's CUDA provider did not start for {name} (no "
                                "usable NVIDIA GPU or CUDA libraries here); use --device cpu")
    return "cpu"


def engine_device(device: str | None, name: str) -> int:
    """The CUDA ordinal a TensorRT engine runs on: engines run only on a GPU, so `cpu` is refused (ValueError)."""
    wanted = parse_device(device)
    if wanted.kind == "cpu":
        raise ValueError(f"{name}: a TensorRT engine runs on a CUDA GPU, not with --device cpu (run the .onnx "
                         "file with ONNX Runtime on the CPU instead)")
    return wanted.index


def device_line(chosen: str, requested: str | None, why: str = "") -> str:
    """The one line that says where a runner runs (printed for --device auto)."""
    auto = parse_device(requested).kind == "auto"
    note = f" (auto{': ' + why if why else ''})" if auto else ""
    return f"device: {chosen}{note}"


__all__ = ["CPU_EP", "CUDA_EP", "DEVICE_HELP", "Device", "check_session_device", "device_line", "engine_device",
           "ort_providers", "parse_device"]
