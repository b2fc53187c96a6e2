"""What the TensorRT paths need from this machine: the TensorRT module of a flavour, its version, a GPU,
the GSWA plugin library loaded once.

Two flavours share every code path; the builder and runner take the imported module:
* ``tensorrt``: TensorRT 10/11 for datacenter GPUs and Jetson (`pip install tensorrt`, JetPack's python3-libnvinfer);
* ``rtx``: TensorRT for RTX (`pip install tensorrt-rtx-cu13`, module ``tensorrt_rtx``), whose builder runs without
  a GPU (ahead-of-time build, JIT-specialised on the user's RTX GPU when loaded).
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from ...plugins import (ENV_LIBRARY, LIBRARY_NAME, RTX_LIBRARY_NAME, find_nvcc, find_plugin_library, package_dir,
                        rtx_parser_link_problem)
from .cudart import device_count, device_info
from .versions import version_tuple

FLAVOURS = {"tensorrt": "tensorrt", "rtx": "tensorrt_rtx"}
FLAVOUR_NAMES = {"tensorrt": "TensorRT", "rtx": "TensorRT-RTX"}
INSTALL_HINTS = {"tensorrt": "pip install tensorrt, or JetPack's python3-libnvinfer",
                 "rtx": "pip install 'agileir[rtx]' (tensorrt-rtx-cu13)"}
MIN_VERSION = {"tensorrt": (10, 0), "rtx": (1, 0)}
_loaded_libraries: dict[str, object] = {}  # path -> handle: load_library refuses a second load in one process


class TensorRTUnavailable(RuntimeError):
    """TensorRT, cuda-python or a CUDA device is missing: a property of the machine, not of the input."""


class EngineMismatch(ValueError):
    """The engine was built for another TensorRT / GPU, or needs a plugin library that is not here."""


def check_flavour(flavour: str) -> str:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown TensorRT flavour {flavour!r} (one of {', '.join(FLAVOURS)})")
    return flavour


def import_trt(flavour: str = "tensorrt") -> ModuleType:
    """The TensorRT module of `flavour`, or TensorRTUnavailable with what is wrong."""
    name = FLAVOURS[check_flavour(flavour)]
    label = FLAVOUR_NAMES[flavour]
    try:
        trt = importlib.import_module(name)
    except ImportError:
        raise TensorRTUnavailable(f"{label} is not installed ({INSTALL_HINTS[flavour]})") from None
    except Exception as e:  # PyPI's download stubs or missing native libraries
        first = f"{type(e).__name__}: {e}".splitlines()[0]
        raise TensorRTUnavailable(f"{label} failed to import ({first})") from None
    if not hasattr(trt, "Builder"):  # e.g. only `tensorrt-stubs` (a namespace of .pyi files) is installed
        raise TensorRTUnavailable(f"the installed `{name}` package has no runtime (type stubs only?): install {label}")
    version = str(getattr(trt, "__version__", "0"))
    if version_tuple(version) < MIN_VERSION[flavour]:
        minimum = ".".join(map(str, MIN_VERSION[flavour]))
        raise TensorRTUnavailable(f"{label} {version} is too old: agileir needs {label} >= {minimum}")
    return trt


def require_tensorrt(flavour: str = "tensorrt") -> str:
    """The installed version of `flavour`, or TensorRTUnavailable."""
    return str(import_trt(flavour).__version__)


def require_gpu(device: int = 0) -> dict:
    """{'name', 'compute_capability'} of the CUDA device, or TensorRTUnavailable."""
    if device_count() <= device:
        raise TensorRTUnavailable("no CUDA device (or no driver / cuda-python) on this machine")
    return device_info(device)


def plugin_library_name(flavour: str = "tensorrt") -> str:
    return RTX_LIBRARY_NAME if check_flavour(flavour) == "rtx" else LIBRARY_NAME


def load_plugin_library(path: str | Path | None = None, flavour: str = "tensorrt") -> object:
    """`get_plugin_registry().load_library` of the GSWA plugin library (default: the built one of `flavour`), once
    per process and flavour (a second load of the same creators fails); returns the handle.

    For TensorRT-RTX it first checks that the `libtensorrt_rtx.so` link its ONNX parser dlopen-s is there: without
    it, parsing a plugin node aborts the process (docs/plugin.md, "TensorRT-RTX")."""
    name = plugin_library_name(flavour)
    lib = Path(path) if path is not None else find_plugin_library(name)
    if lib is None or not lib.is_file():
        raise FileNotFoundError(f"{name} not found{f' at {path}' if path else ''}: build it (docs/plugin.md) "
                                f"or set {ENV_LIBRARY}")
    if flavour == "rtx" and (problem := rtx_parser_link_problem(lib)):
        raise RuntimeError(problem)
    trt = import_trt(flavour)
    key = f"{flavour}:{lib.resolve()}"
    if key in _loaded_libraries:
        return _loaded_libraries[key]
    handle = trt.get_plugin_registry().load_library(str(lib.resolve()))
    if handle is None:
        raise RuntimeError(f"{FLAVOUR_NAMES[flavour]} could not load the plugin library {lib} (built for another "
                           "TensorRT, or its creators are already registered)")
    _loaded_libraries[key] = handle
    return handle


def wheel_library_dir(flavour: str) -> Path | None:
    """The pip wheel folder with the flavour's shared libraries (tensorrt_rtx_libs/, tensorrt_libs/), if any."""
    return package_dir("tensorrt_rtx_libs" if check_flavour(flavour) == "rtx" else "tensorrt_libs")


def plugin_build_spec(flavour: str = "tensorrt"):
    """The PluginBuildSpec for the installed flavour: its version, its wheel's libraries, and for TensorRT the
    local GPU's compute capability (every default architecture without a GPU)."""
    from ...plugins.ondemand import PluginBuildSpec

    version = require_tensorrt(flavour)
    archs = ""
    if flavour == "tensorrt" and device_count() > 0:
        archs = str(device_info(0)["compute_capability"]).replace(".", "")
    return PluginBuildSpec(flavour, version, archs, wheel_library_dir(flavour))


def ensure_plugin_library(flavour: str = "tensorrt", echo=None, cache_dir: str | Path | None = None) -> Path:
    """The GSWA plugin library of `flavour`: $AGILEIR_TRT_PLUGIN_LIB or a build folder when one is there, else
    the plugin cache's, built on first use (TensorRTUnavailable, one line, when this machine cannot build it).
    `echo` (default: stderr) gets a line before and after a build."""
    from ...plugins.ondemand import PluginBuildUnavailable, ensure_library, to_stderr

    found = find_plugin_library(plugin_library_name(flavour))
    if found is not None:
        return found
    try:
        return ensure_library(plugin_build_spec(flavour), cache_dir, echo=echo or to_stderr)
    except PluginBuildUnavailable as e:
        raise TensorRTUnavailable(str(e)) from None


def plugin_library_for(form: str, flavour: str, plugin: str = "auto", echo=None) -> Path | None:
    """The GSWA library a build of a `form` graph loads: None for the standard form and for the Python plugin
    (`plugin` 'qdp'); else ensure_plugin_library. With 'auto', TensorRT >= 10.9 falls back to its Python AOT plugin
    (None) when the library cannot be built here; TensorRT-RTX has only the library."""
    if form != "plugin" or plugin == "qdp":
        return None
    try:
        return ensure_plugin_library(flavour, echo)
    except TensorRTUnavailable:
        if plugin != "auto" or flavour != "tensorrt" or not _qdp_available():
            raise
        return None


def _qdp_available() -> bool:
    from .qdp import import_tensorrt_plugin

    try:
        import_tensorrt_plugin()
    except RuntimeError:
        return False
    return True


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def availability() -> dict[str, str | None]:
    """What the plugin paths need, each entry None when available or a one-line message when not.

    Keys: tensorrt, qdp (tensorrt.plugin AOT, >= 10.9), cuda_python, gpu, nvcc, library.
    """
    status: dict[str, str | None] = {}
    try:
        from .qdp import import_tensorrt_plugin

        import_tensorrt_plugin()
        status["tensorrt"] = None
        status["qdp"] = None
    except RuntimeError as e:
        msg = str(e)
        status["tensorrt"] = msg if "not installed" in msg else None
        status["qdp"] = msg
    except Exception as e:  # a broken install (e.g. PyPI's download stubs)
        status["tensorrt"] = status["qdp"] = f"TensorRT import failed: {type(e).__name__}: {e}".splitlines()[0]

    cuda_python = _module_available("cuda.bindings") or _module_available("cuda.nvrtc")
    status["cuda_python"] = None if cuda_python else "cuda-python is not installed (pip install cuda-python)"

    gpu_msg: str | None = "no CUDA device (neither cuda-python nor torch.cuda found one)"
    try:
        from ...plugins.ptx import current_device_arch

        if current_device_arch(use_env=False) is not None:
            gpu_msg = None
    except Exception as e:
        gpu_msg = f"CUDA device query failed: {type(e).__name__}: {e}".splitlines()[0]
    status["gpu"] = gpu_msg

    status["nvcc"] = None if find_nvcc() else "nvcc is not installed (CUDA toolkit needed to build the kernel / plugin)"
    lib = find_plugin_library()
    status["library"] = None if lib else (f"{LIBRARY_NAME} not built yet (`agileir build` builds it on first use, "
                                          f"`agileir plugin build` ahead of time; or set {ENV_LIBRARY})")
    return status


def availability_report() -> str:
    """Human-readable lines for :func:`availability`."""
    return "\n".join(f"{key:12s} {'ok' if msg is None else msg}" for key, msg in availability().items())
