"""TensorRT backend: checks that an engine can run here, then runs it with cuda-python buffers on a stream.

The execution path is NVIDIA's samples/python/common_runtime.py (cudaMalloc / cudaMemcpyAsync / a
cudaStream, `set_tensor_address`, `execute_async_v3`) with per-call dynamic shapes (`set_input_shape`,
then the output shape from `get_tensor_shape`). Device buffers grow to the largest call and are reused.

`tensorrt` and `cuda.bindings` are imported only inside functions; a missing TensorRT or GPU raises
:class:`~.env.TensorRTUnavailable` (exit code 3 in the CLI), an engine that cannot run here a one-line
:class:`~.env.EngineMismatch` (exit code 2).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..artifacts import read_sidecar
from ..base import Runner
from .cudart import DeviceBuffer, Stream
from .env import (FLAVOUR_NAMES, EngineMismatch, ensure_plugin_library, import_trt, load_plugin_library,
                  require_gpu, require_tensorrt)

if TYPE_CHECKING:
    import tensorrt

def engine_flavour(info: dict) -> str:
    """The flavour an engine.json records (sidecars written before TensorRT-RTX support: TensorRT)."""
    return str(info.get("flavour") or "tensorrt")


def check_flavour_matches(info: dict, flavour: str, name: str = "the engine") -> None:
    built = engine_flavour(info)
    if built != flavour:
        backend = "rtx" if built == "rtx" else "tensorrt"
        raise EngineMismatch(f"{name} is a {FLAVOUR_NAMES.get(built, built)} engine, not a {FLAVOUR_NAMES[flavour]} "
                             f"one: run it with --backend {backend} (or rebuild it with `agileir build --target "
                             f"{flavour}`)")


def check_engine(info: dict, tensorrt_version: str, device: dict, plugin_library: Path | None,
                 name: str = "the engine", flavour: str = "tensorrt") -> None:
    """EngineMismatch (one line) when an engine described by its engine.json cannot run on this machine."""
    check_flavour_matches(info, flavour, name)
    label = FLAVOUR_NAMES[flavour]
    built = str(info.get("tensorrt_version"))
    if built != tensorrt_version:
        raise EngineMismatch(f"{name} was built with {label} {built} but {label} {tensorrt_version} is "
                             f"installed: rebuild it here with `agileir build --target {flavour}`")
    if flavour == "rtx":
        targets = [t for t in info.get("target_compute_capabilities") or [] if t[:1].isdigit()]
        if targets and device["compute_capability"] not in targets:
            raise EngineMismatch(f"{name} was built for compute capabilities {', '.join(targets)} but this GPU is "
                                 f"{device['compute_capability']} ({device['name']}): rebuild it with "
                                 f"--compute-capability {device['compute_capability'].replace('.', '')}")
        return
    cc = str((info.get("gpu") or {}).get("compute_capability"))
    if cc != device["compute_capability"]:
        raise EngineMismatch(f"{name} was built for compute capability {cc} ({(info.get('gpu') or {}).get('name')}) "
                             f"but this GPU is {device['compute_capability']} ({device['name']}): rebuild it here")
    plugin = info.get("plugin") or {}
    if plugin.get("impl") == "library" and plugin_library is None:
        raise EngineMismatch(f"{name} needs the GSWA plugin library {plugin.get('library', 'libagileir_trt_plugins.so')}, "
                             "not found: build it (docs/plugin.md) or set AGILEIR_TRT_PLUGIN_LIB")


def compress_engine(engine: Path) -> dict:
    """Store `engine` zlib-compressed in place and record it in its engine.json (`compression`, `plan_bytes`, and
    `engine_sha256` / `engine_bytes` of the stored file); returns the new sidecar. TensorRT-RTX plans are mostly
    CUDA source kept for the JIT compile, one shared prelude per kernel module: the bundled plugin form's 91.1 MB
    plan stores as 13.0 MB and inflates in ~0.5 s (bench/results/engine_bytes_cpu.json)."""
    import zlib

    from ...io.atomic import write_bytes, write_json
    from ...models.load import file_sha256
    from ..artifacts import sidecar_path

    info = read_sidecar(engine)
    if info.get("compression"):
        return info
    plan = engine.read_bytes()
    write_bytes(engine, zlib.compress(plan, 6))
    info |= {"compression": "zlib", "plan_bytes": len(plan), "engine_bytes": engine.stat().st_size,
             "engine_sha256": file_sha256(engine)}
    write_json(sidecar_path(engine), info)
    return info


def read_engine(engine: Path, info: dict) -> bytes:
    """The serialized plan of `engine`, inflated when its engine.json records `compression: zlib`."""
    data = engine.read_bytes()
    compression = info.get("compression")
    if not compression:
        return data
    if compression != "zlib":
        raise EngineMismatch(f"{engine.name} is stored with {compression!r}, which this agileir cannot read")
    import zlib

    return zlib.decompress(data)


class TensorRTRunner(Runner):
    """Runs an engine of either flavour (the one its engine.json records, or `flavour`, which must match it).
    A TensorRT-RTX engine is JIT-specialised on first load; the result is kept in a runtime cache file beside
    the engine (`<engine>.runtime.cache`), so later loads skip that step."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, plugin_library: str | Path | None = None, device: int = 0,
                 verify_sha256: bool = True, flavour: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"engine not found: {path}")
        self.info = read_sidecar(self.path)
        self.flavour = flavour or engine_flavour(self.info)
        check_flavour_matches(self.info, self.flavour, self.path.name)  # before anything needs TensorRT or a GPU
        self.backend = "rtx" if self.flavour == "rtx" else "tensorrt"
        label = FLAVOUR_NAMES[self.flavour]
        super().__init__(int(self.info["scale"]),
                         f"{self.path.name} ({self.info.get('form', '?')} form, {label} {self.info['tensorrt_version']})",
                         str(self.info["precision"]), window=int(self.info.get("window", 1)))
        profile = self.info["profile"]
        self.min_shape = (profile["min"][0], profile["min"][2], profile["min"][3])
        self.max_shape = (profile["max"][0], profile["max"][2], profile["max"][3])
        self.tensorrt_version = require_tensorrt(self.flavour)
        self.device = device
        self.gpu = require_gpu(device)
        needs_library = (self.info.get("plugin") or {}).get("impl") == "library"
        lib = Path(plugin_library) if plugin_library else None
        if lib is None and needs_library:  # found, or built on first use (docs/plugin.md)
            lib = ensure_plugin_library(self.flavour)
        self.plugin_library = lib if needs_library else None
        check_engine(self.info, self.tensorrt_version, self.gpu, lib, self.path.name, self.flavour)
        self.runtime_cache = self.path.with_suffix(".runtime.cache") if self.flavour == "rtx" else None
        self._runtime_cache_handle = None
        if verify_sha256 and self.info.get("engine_sha256"):
            from ...models.load import file_sha256

            if file_sha256(self.path) != self.info["engine_sha256"]:
                raise EngineMismatch(f"{self.path.name} is not the engine its {self.path.with_suffix('.json').name} "
                                     "describes (sha256 differs): rebuild with `agileir build`")
        self._engine: tensorrt.ICudaEngine | None = None
        self._context: tensorrt.IExecutionContext | None = None
        self._stream: Stream | None = None
        self._buffers = (DeviceBuffer(), DeviceBuffer())

    def _activate(self) -> None:
        trt = import_trt(self.flavour)

        from .cudart import call, runtime_module

        call(runtime_module().cudaSetDevice(self.device))
        if self.plugin_library is not None:
            load_plugin_library(self.plugin_library, self.flavour)
        # A QDP (AOT) engine embeds its PTX: nothing to register at run time.
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(read_engine(self.path, self.info))
        if engine is None:
            raise RuntimeError(f"{FLAVOUR_NAMES[self.flavour]} could not deserialize {self.path.name} (see its log above)")
        self._engine = engine
        self._context = self._create_context(engine)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.path.name}: expected one input and one output, got {inputs} -> {outputs}")
        self._input, self._output = inputs[0], outputs[0]
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._input)))
        self._out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._output)))
        lo, _, hi = engine.get_tensor_profile_shape(self._input, 0)  # the engine itself is authoritative
        self.min_shape, self.max_shape = (lo[0], lo[2], lo[3]), (hi[0], hi[2], hi[3])
        self._stream = Stream()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        assert self._context is not None and self._stream is not None
        x = np.ascontiguousarray(batch, dtype=self._in_dtype)
        if not self._context.set_input_shape(self._input, x.shape):
            raise ValueError(f"input shape {x.shape} is outside the engine's profile "
                             f"{self.min_shape} .. {self.max_shape} (batch, height, width)")
        shape = self._context.get_tensor_shape(self._output)
        out = np.empty([shape[i] for i in range(len(shape))], dtype=self._out_dtype)
        d_in, d_out = self._buffers[0].reserve(x.nbytes), self._buffers[1].reserve(out.nbytes)
        self._context.set_tensor_address(self._input, d_in)
        self._context.set_tensor_address(self._output, d_out)
        self._stream.copy_to_device(d_in, x)
        if not self._context.execute_async_v3(self._stream.ptr):
            raise RuntimeError(f"TensorRT execution of {self.path.name} failed (see the TensorRT log above)")
        self._stream.copy_to_host(out, d_out)
        self._stream.synchronize()
        return out.astype(np.float32, copy=False)

    def _create_context(self, engine):
        if self.runtime_cache is None:
            return engine.create_execution_context()
        runtime_config = engine.create_runtime_config()
        cache = runtime_config.create_runtime_cache()
        if self.runtime_cache.is_file():
            cache.deserialize(self.runtime_cache.read_bytes())
        runtime_config.set_runtime_cache(cache)
        self._runtime_cache_handle = cache
        return engine.create_execution_context(runtime_config)

    def _save_runtime_cache(self) -> None:
        if self._runtime_cache_handle is None or self.runtime_cache is None:
            return
        from ...io.atomic import write_bytes

        data = self._runtime_cache_handle.serialize()
        if data is not None:
            write_bytes(self.runtime_cache, memoryview(data))

    def _deactivate(self) -> None:
        self._save_runtime_cache()
        if self._stream is not None:
            self._stream.synchronize()
        for buf in self._buffers:
            buf.free()
        if self._stream is not None:
            self._stream.destroy()
        self._stream = None
        self._context = None  # the context goes before its engine
        self._engine = None
