"""Serve a runner through Triton Inference Server in this process (PyTriton): HTTP + gRPC on 127.0.0.1.

PyTriton starts the `tritonserver` binary it ships; each bound model runs as Triton's Python backend stub
(`triton_python_backend_stub`, one build per Python minor version) which forwards requests to the infer
function in this process. The stub for 3.11 links `libpython3.11.so.1.0` by soname only (its RPATH names just
`nvidia_pytriton.libs`), so the dynamic loader takes the first one on the default path: on a machine whose
interpreter is not the system one (pyenv 3.11.7 here, Debian's libpython 3.11.2 in /lib) the stub runs the
3.11.2 runtime on 3.11.7's standard library, and multiprocessing's resource_tracker (which since 3.11.6
calls `RLock._recursion_count()`, CPython gh-109629) fails with
`AttributeError: '_thread.RLock' object has no attribute '_recursion_count'`. `stub_library_env` puts the
running interpreter's LIBDIR first on LD_LIBRARY_PATH (PyTriton passes the environment on to the server and
the stub), so the stub loads the same libpython as the interpreter whose stdlib it reads.
"""
from __future__ import annotations

import os
import socket
import sysconfig
from pathlib import Path
from typing import MutableMapping

import numpy as np

from ..runtime.base import INPUT, OUTPUT


def free_local_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 now, for start_server's http/grpc/metrics ports."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stub_library_env(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Prepend this interpreter's libpython folder to LD_LIBRARY_PATH (in `environ`, default os.environ);
    returns the folder, or None when the interpreter has no shared libpython (static build)."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if not libdir or not soname or not (Path(libdir) / soname).is_file():
        return None
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    if not parts or parts[0] != libdir:
        env["LD_LIBRARY_PATH"] = ":".join([libdir] + [p for p in parts if p != libdir])
    return libdir


def infer_function(runner):
    """The PyTriton infer function around `runner.upscale`: lr (N, 3, H, W) FP32 -> sr, bad shapes refused."""
    from pytriton.decorators import batch
    from pytriton.exceptions import PyTritonBadParameterError

    @batch
    def infer(lr: np.ndarray):
        if lr.ndim != 4 or lr.shape[1] != 3 or lr.shape[2] < 1 or lr.shape[3] < 1:
            raise PyTritonBadParameterError(f"{INPUT} must be N x 3 x H x W, got {list(lr.shape)}")
        if lr.dtype != np.float32:
            raise PyTritonBadParameterError(f"{INPUT} must be FP32, got {lr.dtype}")
        return {OUTPUT: np.asarray(runner.upscale(np.ascontiguousarray(lr)), dtype=np.float32)}
    return infer


def start_server(runner, model_name: str, http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 max_batch_size: int = 8, instances: int = 1, log_verbose: int = 0):
    """A running pytriton.triton.Triton serving `runner` as `model_name` on 127.0.0.1 (call .stop())."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    stub_library_env()
    config = TritonConfig(http_address="127.0.0.1", http_port=http_port, grpc_address="127.0.0.1",
                          grpc_port=grpc_port, metrics_address="127.0.0.1", metrics_port=metrics_port,
                          log_verbose=log_verbose)
    triton = Triton(config=config)
    try:
        triton.bind(model_name=model_name, infer_func=[infer_function(runner)] * instances,
                    inputs=[Tensor(name=INPUT, dtype=np.float32, shape=(3, -1, -1))],
                    outputs=[Tensor(name=OUTPUT, dtype=np.float32, shape=(3, -1, -1))],
                    config=ModelConfig(max_batch_size=max_batch_size, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)),
                    strict=True)
        triton.run()
    except BaseException:
        triton.stop()
        raise
    return triton
