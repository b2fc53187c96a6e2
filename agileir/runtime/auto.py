"""`--backend auto`: which installed engine runs a file fastest on the device asked for, by a measured rule.

checkpoint -> pytorch, engine -> the engine's flavour (tensorrt / rtx), and an .onnx file:

1. the plugin form -> onnxruntime (only ONNX Runtime runs its custom GSWA node without a GPU engine);
2. an NVIDIA GPU asked for (--device cuda / cuda:N), or --device auto with ONNX Runtime's CUDA provider
   installed -> onnxruntime (CUDA EP);
3. an OpenVINO device asked for (GPU, NPU, AUTO, ...), or a CPU run on x86 with OpenVINO installed ->
   openvino: on x86 CPUs OpenVINO (f32 hint) runs the bundled model faster than ONNX Runtime FP32 at the
   same PSNR (docs/openvino.md, bench/results/openvino_cpu.json);
4. otherwise -> onnxruntime (CPU).

Nothing here imports a backend: installed means importable (importlib.util.find_spec).
"""
from __future__ import annotations

import importlib.util
import platform

X86 = ("x86_64", "amd64", "i386", "i686")
OPENVINO_REASON = ("OpenVINO is installed and this is an x86 CPU, where it measured faster than ONNX Runtime FP32 "
                   "at the same PSNR (docs/openvino.md)")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ort_has_cuda() -> bool:
    """ONNX Runtime's CUDA provider is installed (onnxruntime-gpu)."""
    if not installed("onnxruntime"):
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def onnx_form(path) -> str:
    """The export form an .onnx file's metadata records ('standard' when it records none)."""
    from .artifacts import onnx_metadata

    return str(onnx_metadata(path).get("form", "standard")) if path else "standard"


def auto_onnx_backend(path, device: str = "auto") -> tuple[str, str]:
    """(backend, the reason in a few words) for running the .onnx file `path` on `device`."""
    dev = (device or "auto").lower()
    if onnx_form(path) == "plugin":
        return "onnxruntime", "the plugin form's GSWA node runs in ONNX Runtime"
    if dev.startswith("cuda"):
        return "onnxruntime", "an NVIDIA GPU was asked for (CUDA execution provider)"
    if dev == "auto" and ort_has_cuda():
        return "onnxruntime", "ONNX Runtime's CUDA execution provider is installed"
    if dev not in ("auto", "cpu"):
        return "openvino", f"--device {device} is an OpenVINO device"
    if installed("openvino") and platform.machine().lower() in X86:
        return "openvino", OPENVINO_REASON
    return "onnxruntime", "ONNX Runtime CPU (OpenVINO is not installed or this is not an x86 CPU)"
