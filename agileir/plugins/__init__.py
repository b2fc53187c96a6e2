"""TensorRT plugin and fused CUDA kernel for Group Shifted Window Attention (docs/gswa.md, docs/plugin.md).

Pieces:
  csrc/gswa_kernel.cu   fused kernel (+ plain C launchers); compiles with nvcc and NVRTC
  csrc/gswa_plugin.cpp  TensorRT IPluginV3 "agileir::GroupShiftedWindowAttention" v1 (CMakeLists.txt)
  launch.py             launch parameters (mirror of gswa_launch_config), pure Python
  ptx.py                NVRTC compilation through cuda-python (no TensorRT needed)

The TensorRT side (loading the library, the Python QDP, what this machine has: `availability()`) lives in
agileir.runtime.tensorrt. Nothing here imports TensorRT, torch or cuda-python.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import re
import subprocess
from pathlib import Path

from ..models.gswa_node import OP_TYPE as PLUGIN_NAME
from ..models.gswa_node import PLUGIN_NAMESPACE, PLUGIN_VERSION

LIBRARY_NAME = "libagileir_trt_plugins.so"
STATIC_LIBRARY_NAME = "libagileir_trt_plugins_static.so"
RTX_LIBRARY_NAME = "libagileir_trt_plugins_rtx.so"  # cmake -DAGILEIR_TRT_FLAVOUR=rtx (TensorRT-RTX)
FLAVOURS = ("tensorrt", "rtx")
KERNEL_LIBRARY_NAME = "libagileir_gswa.so"
DEFAULT_CUDA_ARCHS = "87;89;90"
ENV_LIBRARY = "AGILEIR_TRT_PLUGIN_LIB"

_PLUGINS_DIR = Path(__file__).resolve().parent


class NvccNotFound(RuntimeError):
    pass


def kernel_source_dir() -> Path:
    """Folder with gswa_kernel.cu / .h and gswa_plugin.cpp / .h."""
    return _PLUGINS_DIR / "csrc"


def plugin_source_dir() -> Path:
    """Folder with CMakeLists.txt (the -S of cmake)."""
    return _PLUGINS_DIR


def default_build_dirs() -> list[Path]:
    """Where :func:`find_plugin_library` looks after $AGILEIR_TRT_PLUGIN_LIB."""
    repo_root = _PLUGINS_DIR.parent.parent
    # build/plugins-rtx: where docs/plugin.md builds the TensorRT-RTX flavour
    return [repo_root / "build" / "plugins", repo_root / "build" / "plugins-rtx", _PLUGINS_DIR / "build",
            Path.cwd() / "build" / "plugins", Path.cwd() / "build" / "plugins-rtx"]


def find_plugin_library(name: str = LIBRARY_NAME) -> Path | None:
    """Path of the built plugin library: $AGILEIR_TRT_PLUGIN_LIB (a file, or a folder holding ``name``), then
    the default build folders. None when nothing is found."""
    env = os.environ.get(ENV_LIBRARY)
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            p = p / name
        if p.is_file():
            return p
    for d in default_build_dirs():
        if (d / name).is_file():
            return d / name
    return None


def build_plugin_library(
    tensorrt_root: str | os.PathLike | None = None,
    build_dir: str | os.PathLike | None = None,
    cuda_archs: str = DEFAULT_CUDA_ARCHS,
    jobs: int | None = None,
    require_tensorrt: bool = True,
    flavour: str = "tensorrt",
    include_dir: str | os.PathLike | None = None,
    library_dir: str | os.PathLike | None = None,
) -> Path:
    """Configure and build agileir/plugins/CMakeLists.txt; returns the path of the plugin library
    (libagileir_trt_plugins.so, or libagileir_trt_plugins_rtx.so for ``flavour="rtx"``; libagileir_gswa.so when
    ``require_tensorrt`` is False and no TensorRT headers were found).

    Headers come from ``include_dir`` (AGILEIR_TRT_INCLUDE) or ``tensorrt_root``/include (a TensorRT tarball or
    TensorRT-RTX SDK; pip wheels ship no headers); ``library_dir`` (AGILEIR_TRT_LIBRARY_DIR) may name a wheel's
    tensorrt_libs/ or tensorrt_rtx_libs/ folder."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake is not installed (needed to build the TensorRT plugin library)")
    nvcc = os.environ.get("CUDACXX") or find_nvcc()
    if nvcc is None:
        raise NvccNotFound("nvcc not found (set CUDACXX or CUDA_HOME, or add the CUDA toolkit's bin/ to PATH)")
    build = Path(build_dir) if build_dir is not None else default_build_dirs()[0]
    build.mkdir(parents=True, exist_ok=True)
    cfg = [cmake, "-S", str(plugin_source_dir()), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={nvcc}",
           f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}", f"-DAGILEIR_REQUIRE_TENSORRT={'ON' if require_tensorrt else 'OFF'}",
           f"-DAGILEIR_TRT_FLAVOUR={flavour}"]
    if tensorrt_root is not None:
        cfg.append(f"-DTensorRT_ROOT={Path(tensorrt_root).expanduser()}")
    if include_dir is not None:
        cfg.append(f"-DAGILEIR_TRT_INCLUDE={Path(include_dir).expanduser()}")
    if library_dir is not None:
        cfg.append(f"-DAGILEIR_TRT_LIBRARY_DIR={Path(library_dir).expanduser()}")
    _run(cfg, "cmake configure")
    cmd = [cmake, "--build", str(build)]
    if jobs:
        cmd += ["-j", str(jobs)]
    _run(cmd, "cmake build")
    wanted = RTX_LIBRARY_NAME if flavour == "rtx" else LIBRARY_NAME
    for name in (wanted, KERNEL_LIBRARY_NAME):
        if (build / name).is_file():
            return build / name
    raise RuntimeError(f"build finished but {wanted} is not in {build}")


class PluginBuildError(RuntimeError):
    """An external build step (cmake, nvcc, the C++ compiler) failed. The first line names the step, the file of
    the compiler's first error and that error (`first_error`); `output` holds the whole output, whose last
    4000 characters follow the first line."""

    def __init__(self, what: str, cmd: list[str], output: str) -> None:
        self.output = output
        line, file = first_error(output)
        where = f" in {file}" if file else ""
        head = f"{what} failed{where}: {line}" if line else f"{what} failed ({' '.join(cmd[:3])} ...)"
        super().__init__(f"{head}\n{output[-4000:]}")


# The first error of a failed build, as each tool prints it
_ERROR_LINES = (
    re.compile(r"^(?P<file>[^\s:(][^:(]*)\((?P<line>\d+)\): (?:catastrophic )?error:? (?P<msg>.*)$"),  # nvcc, NVRTC
    re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$"),  # gcc, clang
    re.compile(r"^CMake Error at (?P<file>[^:]+):(?P<line>\d+) \((?P<msg>[^)]*)\):?$"),  # cmake: its text follows
    re.compile(r"^(?P<file>\S+\.(?:o|so|a)):(?P<line>)[^:]*:? ?(?P<msg>undefined reference.*)$"),  # the linker
)


def first_error(output: str) -> tuple[str, str | None]:
    """(the first error of a build's output as `FILE:LINE: error: MESSAGE`, the file it names), or the first line
    that says error and None, or ("", None)."""
    lines = output.splitlines()
    for i, raw in enumerate(lines):
        for pattern in _ERROR_LINES:
            m = pattern.match(raw.strip())
            if m is None:
                continue
            msg = m.group("msg").strip()
            if raw.strip().startswith("CMake Error"):  # the message is on the next non-blank line
                msg = next((t.strip() for t in lines[i + 1:] if t.strip()), msg)
            where = f"{m.group('file')}:{m.group('line')}" if m.group("line") else m.group("file")
            return f"{where}: error: {msg}", m.group("file")
    return next((t.strip() for t in lines if re.search(r"\berror\b", t, re.IGNORECASE)), ""), None


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PluginBuildError(what, cmd, proc.stdout + proc.stderr)
    return proc


def find_nvcc() -> str | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
            if cand and (Path(cand) / "bin" / "nvcc").is_file():
                return str(Path(cand) / "bin" / "nvcc")
    return nvcc


def nvcc_command(arch, out_path: str | os.PathLike, mode: str = "cubin", extra: list[str] | None = None) -> list[str]:
    """The nvcc command line :func:`compile_kernel_nvcc` runs (mode: cubin, ptx, obj, shared)."""
    from agileir.plugins.ptx import normalize_arch

    nvcc = find_nvcc()
    if nvcc is None:
        raise NvccNotFound("nvcc is not installed or not on PATH: install the CUDA toolkit (or set CUDA_HOME)")
    cc = normalize_arch(arch)
    src = str(kernel_source_dir() / "gswa_kernel.cu")
    flags = {"cubin": ["-cubin"], "ptx": ["-ptx"], "obj": ["-c", "-Xcompiler", "-fPIC"],
             "shared": ["-shared", "-Xcompiler", "-fPIC"]}
    if mode not in flags:
        raise ValueError(f"mode must be one of {sorted(flags)}, got {mode!r}")
    arch_flag = f"-arch=compute_{cc}" if mode == "ptx" else f"-arch=sm_{cc}"
    return [nvcc, arch_flag, "-std=c++17", "-O3", *flags[mode], *(extra or []), "-o", str(out_path), src]


def compile_kernel_nvcc(arch, out_dir: str | os.PathLike, mode: str = "cubin", extra: list[str] | None = None) -> Path:
    """Compile gswa_kernel.cu with nvcc for ``arch`` (87, "sm_90", ...) into ``out_dir``.

    mode: "cubin" (-cubin), "ptx" (-ptx), "obj" (-c) or "shared" (a .so with the C launchers). Raises
    :class:`NvccNotFound` when nvcc is missing and RuntimeError with the compiler output on failure.
    """
    from agileir.plugins.ptx import normalize_arch

    cc = normalize_arch(arch)
    suffix = {"cubin": ".cubin", "ptx": ".ptx", "obj": ".o", "shared": ".so"}.get(mode, "")
    out = Path(out_dir) / (f"libgswa_kernel_sm{cc}.so" if mode == "shared" else f"gswa_kernel_sm{cc}{suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(nvcc_command(cc, out, mode, extra), f"nvcc ({mode}, sm_{cc})")
    return out


def package_dir(name: str) -> Path | None:
    """The folder of an installed package (e.g. the wheel folders tensorrt_libs/, tensorrt_rtx_libs/) without
    importing it; None when it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def rtx_parser_link_problem(lib: str | os.PathLike) -> str | None:
    """None when the TensorRT-RTX ONNX parser will find ``libtensorrt_rtx.so`` once ``lib`` is loaded (a link next
    to ``lib`` that resolves to an existing file, or that name in the wheel folder itself), else a one-line fix."""
    lib = Path(lib)
    link = lib.parent / "libtensorrt_rtx.so"
    if link.exists():
        return None
    wheel = package_dir("tensorrt_rtx_libs")
    if wheel is not None and (wheel / "libtensorrt_rtx.so").exists():
        return None  # the parser's RPATH ($ORIGIN) finds it there
    for d in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        if (Path(d) / "libtensorrt_rtx.so").exists():
            return None  # (as long as LD_LIBRARY_PATH was set when the process started)
    target = wheel / "libtensorrt_rtx.so.1" if wheel is not None else Path("<TensorRT-RTX lib>/libtensorrt_rtx.so.1")
    return (f"{link} is missing: the TensorRT-RTX ONNX parser dlopen-s libtensorrt_rtx.so and aborts the process "
            f"without it; run: ln -s {target} {link}")


__all__ = [
    "PLUGIN_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "LIBRARY_NAME", "STATIC_LIBRARY_NAME", "RTX_LIBRARY_NAME",
    "FLAVOURS", "NvccNotFound", "PluginBuildError", "first_error",
    "kernel_source_dir", "plugin_source_dir", "find_plugin_library", "build_plugin_library", "compile_kernel_nvcc",
    "nvcc_command", "rtx_parser_link_problem",
]
