"""The TensorRT plugin library built on first use and cached, so a pip install needs no manual CMake step.

An entry of the plugin cache (``$AGILEIR_PLUGIN_CACHE``, else ``$XDG_CACHE_HOME/agileir/plugins``, else
``~/.cache/agileir/plugins``) is one built library for one TensorRT flavour and version, CUDA architecture list
and plugin source (sha256 of ``csrc/`` and ``CMakeLists.txt``): ``<flavour>-<version>-<digest>/`` holding the
library (for TensorRT-RTX also its ``libtensorrt_rtx.so`` link, docs/plugin.md) and ``build.json``, written last.
Builders of one entry take a file lock; the winner builds in a temporary folder and renames the finished entry
into place, the others then find it. Headers: ``include_dir`` / ``$AGILEIR_TRT_INCLUDE``, ``tensorrt_root`` /
``$TensorRT_ROOT`` (``include/``), else the pinned open-source headers (:mod:`.headers`), fetched once into the
cache.

Kernel code: the RTX flavour embeds PTX for compute_75 only (``75-virtual``: one compile, JIT-compiled by the
driver for every TensorRT-RTX target, Turing to Blackwell); the TensorRT flavour compiles for the local GPU when
its compute capability is known, else for :data:`DEFAULT_CUDA_ARCHS`.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..io.atomic import file_lock, user_cache_dir
from . import (DEFAULT_CUDA_ARCHS, RTX_LIBRARY_NAME, LIBRARY_NAME, build_plugin_library, find_nvcc,
               plugin_source_dir)
from .headers import HeaderFetchError, fetch_headers, header_tag

ENV_PLUGIN_CACHE = "AGILEIR_PLUGIN_CACHE"
RTX_CUDA_ARCHS = "75-virtual"
RTX_LINK = "libtensorrt_rtx.so"
BUILD_RECORD = "build.json"


class PluginBuildUnavailable(RuntimeError):
    """This machine lacks something the plugin build needs (compiler, nvcc, cmake, headers): one line."""


@dataclass(frozen=True)
class PluginBuildSpec:
    """What one cached plugin library is built for. ``library_dir``: folder with libnvinfer / libtensorrt_rtx
    (e.g. a pip wheel's tensorrt_rtx_libs/); ``include_dir`` / ``tensorrt_root``: headers (else the environment,
    else the pinned fetch); ``cuda_archs``: CMAKE_CUDA_ARCHITECTURES ('' = the flavour's default)."""

    flavour: str
    tensorrt_version: str
    cuda_archs: str = ""
    library_dir: Path | None = None
    include_dir: Path | None = None
    tensorrt_root: Path | None = None

    @property
    def archs(self) -> str:
        return self.cuda_archs or (RTX_CUDA_ARCHS if self.flavour == "rtx" else DEFAULT_CUDA_ARCHS)

    @property
    def library_name(self) -> str:
        return RTX_LIBRARY_NAME if self.flavour == "rtx" else LIBRARY_NAME


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def plugin_cache_dir() -> Path:
    return user_cache_dir("plugins", ENV_PLUGIN_CACHE)


def source_digest() -> str:
    """sha256 of the plugin's sources and build script (a changed source is a new cache entry)."""
    h = hashlib.sha256()
    root = plugin_source_dir()
    files = [root / "CMakeLists.txt", *sorted((root / "csrc").glob("*.[ch]*"))]
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def entry_name(spec: PluginBuildSpec) -> str:
    key = json.dumps({"source": source_digest(), "archs": spec.archs, "flavour": spec.flavour,
                      "version": spec.tensorrt_version}, sort_keys=True)
    return f"{spec.flavour}-{spec.tensorrt_version}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def missing_tools() -> list[str]:
    """What the build needs and this machine lacks, as names for one line."""
    missing = []
    if shutil.which("cmake") is None:
        missing.append("cmake")
    if shutil.which(os.environ.get("CXX") or "c++") is None and shutil.which("g++") is None:
        missing.append("a C++ compiler (c++ / $CXX)")
    if not (os.environ.get("CUDACXX") or find_nvcc()):
        missing.append("nvcc (the CUDA toolkit; set CUDA_HOME or CUDACXX)")
    return missing


def _include_from(path: Path | str | None) -> Path | None:
    if not path:
        return None
    p = Path(path).expanduser()
    for cand in (p, p / "include"):
        if (cand / "NvInferRuntime.h").is_file():
            return cand
    return None


def resolve_headers(spec: PluginBuildSpec, cache: Path) -> Path:
    """The include folder with NvInferRuntime.h: given, from the environment, or the pinned fetch."""
    explicit = spec.include_dir or os.environ.get("AGILEIR_TRT_INCLUDE")
    root = spec.tensorrt_root or os.environ.get("TensorRT_ROOT")
    for given, what in ((explicit, "AGILEIR_TRT_INCLUDE"), (root, "TensorRT_ROOT")):
        found = _include_from(given)
        if given and found is None:
            raise PluginBuildUnavailable(f"TensorRT headers not found: {what}={given} has no NvInferRuntime.h")
        if found is not None:
            return found
    try:
        tag = header_tag(spec.flavour, spec.tensorrt_version)
        with file_lock(cache / ".headers.lock"):
            return fetch_headers(tag, cache / "headers" / tag)
    except HeaderFetchError as e:
        raise PluginBuildUnavailable(f"TensorRT headers not found (set AGILEIR_TRT_INCLUDE or TensorRT_ROOT; "
                                     f"fetching NVIDIA's failed: {e})") from None


def cached_library(spec: PluginBuildSpec, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The finished cache entry's library for ``spec``, or None."""
    entry = Path(cache_dir or plugin_cache_dir()) / entry_name(spec)
    lib = entry / spec.library_name
    return lib if (entry / BUILD_RECORD).is_file() and lib.is_file() else None


def ensure_library(spec: PluginBuildSpec, cache_dir: str | os.PathLike | None = None,
                   echo: Callable[[str], None] = to_stderr, jobs: int = 2) -> Path:
    """The cached plugin library for ``spec``, built first when absent (PluginBuildUnavailable, one line, when
    this machine cannot build it; RuntimeError with the compiler's output when the build fails)."""
    cache = Path(cache_dir) if cache_dir is not None else plugin_cache_dir()
    found = cached_library(spec, cache)
    if found is not None:
        return found
    if missing := missing_tools():
        raise PluginBuildUnavailable(f"cannot build {spec.library_name}: {', '.join(missing)} not found")
    include = resolve_headers(spec, cache)
    name = entry_name(spec)
    with file_lock(cache / f".{name}.lock"):
        found = cached_library(spec, cache)
        if found is not None:  # another process built it while this one waited
            return found
        staging = cache / f".{name}.{secrets.token_hex(4)}.building"
        try:
            echo(f"plugin: building {spec.library_name} for {spec.flavour} {spec.tensorrt_version} "
                 f"(CUDA {spec.archs}, headers {include}) ...")
            lib = build_plugin_library(spec.tensorrt_root, staging / "build", spec.archs, jobs, True, spec.flavour,
                                       include, spec.library_dir)
            out = staging / "entry"
            copy_library(lib, out)
            record = {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()},
                      "cuda_archs": spec.archs, "include_dir": str(include), "source_sha256": source_digest()}
            (out / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            shutil.rmtree(cache / name, ignore_errors=True)  # an incomplete entry (no build.json)
            out.rename(cache / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    echo(f"plugin: built {cache / name / spec.library_name}")
    return cache / name / spec.library_name


def copy_library(lib: Path, out_dir: str | os.PathLike) -> Path:
    """Copy a built plugin library into ``out_dir`` with, for TensorRT-RTX, its ``libtensorrt_rtx.so`` link
    (pointing at the same libtensorrt_rtx.so.1 as the one beside ``lib``); returns the copy."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / lib.name
    tmp = out / f".{lib.name}.{secrets.token_hex(4)}.tmp"
    shutil.copy2(lib, tmp)
    os.replace(tmp, target)
    link = lib.parent / RTX_LINK
    if lib.name == RTX_LIBRARY_NAME and link.exists() and (out / RTX_LINK).resolve() != link.resolve():
        tmp_link = out / f".{RTX_LINK}.{secrets.token_hex(4)}.tmp"
        os.symlink(link.resolve(), tmp_link)
        os.replace(tmp_link, out / RTX_LINK)
    return target


__all__ = ["ENV_PLUGIN_CACHE", "PluginBuildSpec", "PluginBuildUnavailable", "cached_library", "copy_library",
           "ensure_library", "entry_name", "missing_tools", "plugin_cache_dir", "resolve_headers", "source_digest"]
