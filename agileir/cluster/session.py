"""The Ray session of a batch job: the local instance's size, cluster checks before anything is created, start
and shutdown (also on SIGINT/SIGTERM), and the share of a node's memory budget each actor takes.

Ray is imported inside functions only: importing this module needs no Ray.
"""
from __future__ import annotations

import gc
import os
import signal
import socket
import traceback
from contextlib import contextmanager
from pathlib import Path

from ..io.atomic import TEMP_MARK, is_temp_file


class ClusterUnavailable(ConnectionError):
    """The Ray cluster of `--ray-address` cannot be reached, or a package its protocol needs is missing."""


def local_ray_cpus(actors: int, cpus_per_actor: float, requested: int | None = None) -> int:
    """CPUs a local Ray instance declares: the actors' share plus one for decode/encode tasks, at least the
    machine's count only when asked (`requested`); bounded so a laptop run never claims a cluster's worth."""
    if requested:
        return int(requested)
    need = int(actors * cpus_per_actor + 0.999) + 1
    return max(need, min(os.cpu_count() or 1, 8))


def check_local_cpus(actors: int, cpus_per_actor: float, num_cpus: int | None) -> None:
    """A local instance too small for the actor pool would wait forever: refused (ValueError) before it starts."""
    cpus = local_ray_cpus(actors, cpus_per_actor, num_cpus)
    need = actors * cpus_per_actor + 0.5  # the decode/encode tasks take 0.5 each
    if need > cpus:
        raise ValueError(f"--actors {actors} x --cpus-per-actor {cpus_per_actor:g} and the decode/encode tasks "
                         f"need {need:g} CPUs, but the local Ray instance has --num-cpus {cpus}")


def actors_per_node(actors: int, cpus_per_actor: float, node_cpus: float, gpus_per_actor: float = 0.0,
                    node_gpus: float = 0.0) -> int:
    """How many of the job's actors one node can hold at once (its CPUs, and GPUs when actors take them): they
    share its memory budget, so each plans its tiles with budget / this."""
    fit = int(node_cpus // cpus_per_actor) if cpus_per_actor > 0 else actors
    if gpus_per_actor > 0:
        fit = min(fit, int(node_gpus // gpus_per_actor))
    return max(1, min(actors, fit))


def this_node_resources() -> tuple[float, float]:
    """(CPUs, GPUs) Ray declares for the node this process runs on (os.cpu_count(), 0 outside Ray)."""
    try:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("not in Ray")
        node = ray.get_runtime_context().get_node_id()
        for info in ray.nodes():
            if info.get("NodeID") == node:
                res = info.get("Resources", {})
                return float(res.get("CPU", 1)), float(res.get("GPU", 0))
    except Exception:
        pass
    return float(os.cpu_count() or 1), 0.0


def check_cluster(address: str | None, timeout_s: float = 20.0) -> None:
    """Before anything is created: a `ray://host:port` address needs ray[client] (grpc) and a `host:port` or
    `ray://host:port` address must accept a TCP connection within `timeout_s` (ClusterUnavailable otherwise;
    'auto' is left to ray.init, which fails fast when no cluster is found)."""
    if not address or address == "auto":
        return
    hostport = address
    if address.startswith("ray://"):
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise ClusterUnavailable(f"--ray-address {address} needs ray[client] (pip install 'ray[client]')")
        hostport = address[len("ray://"):]
    host, _, port = hostport.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address}: expected 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def check_gpus(gpus: float) -> None:
    """A local instance without the GPUs the actors ask for would wait forever (ClusterUnavailable instead)."""
    import ray

    have = float(ray.cluster_resources().get("GPU", 0))
    if have < gpus:
        raise ClusterUnavailable(f"each actor needs {gpus:g} GPU, and the local Ray instance sees {have:g} "
                                 "(--gpus-per-actor 0 runs a checkpoint or ONNX model on the CPU)")


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def init_ray(address: str | None, num_cpus: int, object_store_mb: int = 512) -> bool:
    """Connect to `address`, or start a local instance; returns whether this call started Ray. The caller's
    SIGINT/SIGTERM handlers are kept (ray.init replaces SIGTERM's with one that dumps a stack and aborts)."""
    import ray

    if ray.is_initialized():
        return False
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=object_store_mb * 2**20,
                     log_to_driver=True)
    except ConnectionError as e:
        raise ClusterUnavailable(f"cannot connect to the Ray cluster at {address}: {_first_line(e)}") from None
    finally:
        _restore_handlers(handlers)
    return True


def _restore_handlers(handlers: dict) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread: nothing was installed by us either
                pass


def remove_temporaries(outputs: list[Path]) -> None:
    """The temporary files of these outputs (`.NAME.agileir-*.tmp`), left by workers Ray stopped mid-write."""
    by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        path = Path(output)
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if is_temp_file(entry) and entry.name[1:].rsplit(TEMP_MARK, 1)[0] in names:
                entry.unlink(missing_ok=True)


@contextmanager
def ray_session(address: str | None, num_cpus: int, outputs: list[Path]):
    """Ray for the job (started or joined), shut down after it, also on SIGINT/SIGTERM or a run cut short, and
    then the temporary files of `outputs` that stopped workers left behind removed."""
    import ray

    started = init_ray(address, num_cpus)
    try:
        yield
    except BaseException as e:
        # Collect the job's frames (Ray Data's iterators) while Ray is up: finalized after shutdown, they start a
        # new local instance and print tracebacks on the way out of a SIGINT/SIGTERM
        traceback.clear_frames(e.__traceback__)
        gc.collect()
        raise
    finally:
        if started:
            ray.shutdown()
        remove_temporaries(outputs)


__all__ = ["ClusterUnavailable", "actors_per_node", "check_cluster", "check_gpus", "check_local_cpus", "init_ray",
           "local_ray_cpus", "ray_session", "remove_temporaries", "this_node_resources"]
