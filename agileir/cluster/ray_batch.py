"""Batch upscaling on Ray Data: decode and encode as CPU tasks, inference in an actor pool.

    source (folder | glob | list file of paths/URIs)
      -> ray.data.from_items(rows)                 one row per image: input, output
      -> map(decode)                               CPU task: resume check, fetch (pyarrow fs), decode
      -> map_batches(UpscaleActor, concurrency=N)  actor pool: one runner per actor, loaded once
      -> map(encode)                               CPU task: atomic PNG
      -> manifest.json (atomic)                    input, output, status, error, seconds per image

Per image the work is the one `agileir-infer` does (`read_image` / `decode_image`, then
`agileir.upscale.upscaler.Upscaler.upscale_image` with the same TilingOptions and defaults, written through
`agileir.upscale.writing.write_upscaled`, named by `outputs.output_names`), so outputs are bit-identical for the
same runner. The manifest and every output are claimed in the run's output gate (agileir.io.gate.OutputGate, as
agileir-infer does) before any work: a run that would replace an input, or an existing file agileir did not write
(unless the gate overwrites), is refused; the encode tasks record each image they write (the gate pickles), so
a rerun may replace or skip them. A failing image
becomes a row with status "failed" and its error; it never stops the job, except a write that fails for lack of
space (ENOSPC), which would fail for every image: the run stops and raises that OSError. The manifest records
each output's sha256; a rerun skips ("skipped") an output only when its bytes still match that hash, so a
stale or damaged file is redone.

Before anything is created (no output folder, no Ray instance) the manifest is claimed, the model probed,
every output planned and claimed, and a `--ray-address` cluster checked to be reachable (ClusterUnavailable, within
`connect_timeout_s`). SIGINT/SIGTERM stop the job: Ray is shut down and the temporary files of this run's
outputs removed, then the interrupt propagates.

Ray is imported inside functions only: importing this module needs no Ray.
"""
from __future__ import annotations

import errno
import gc
import glob as globlib
import json
import os
import pickle
import signal
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..io.atomic import TEMP_MARK, is_temp_file
from ..io.gate import OutputGate, file_sha256
from ..io.images import IMAGE_SUFFIXES, ImageError, decode_image, list_images, read_image
from ..io.outputs import OutputFolder, output_names
from ..runtime import RunnerSpec
from ..upscale.options import TilingOptions
from ..upscale.writing import IMAGE

MANIFEST_FORMAT = "agileir-batch/1"
MANIFEST_KIND = "batch manifest"  # its kind of output in the gate
LIST_SUFFIXES = (".txt", ".lst", ".list")


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def resolve_inputs(source: str) -> list[str]:
    """Images of a folder (as agileir-infer lists them), a glob, or a text file with one path/URI a line
    (blank lines and '#' comments ignored; relative paths are relative to the list file)."""
    path = Path(_local(source))
    if path.is_dir():
        return [str(p) for p in list_images(path)]
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        items = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            items.append(line if is_uri(line) or os.path.isabs(_local(line)) else str(path.parent / line))
        if not items:
            raise ImageError(f"{source}: the list has no entries")
        return items
    if path.is_file():
        return [str(path)]
    if any(c in source for c in "*?["):
        found = sorted(p for p in globlib.glob(source, recursive=True)
                       if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ImageError(f"{source}: the pattern matches no image files")
        return found
    raise ImageError(f"{source}: no such folder, list file or pattern")


def plan_outputs(inputs: list[str], out_dir: Path, scale: int, gate: OutputGate | None = None) -> list[dict]:
    """One row per input with its output path, claimed in `gate` (None: a gate of this call, without overwrite)
    with every local input added to its inputs. Refused before any work (ValueError / OutputConflict): two
    inputs that would write the same output, an output that is any input of the gate (local inputs, the model
    files), by path, symlink or hard link, and an existing file agileir did not write unless the gate
    overwrites."""
    rows: list[dict] = []
    seen: dict[Path, str] = {}
    for src, name in zip(inputs, output_names(inputs, scale)):
        dst = out_dir / name
        if dst in seen:
            raise ValueError(f"{src} and {seen[dst]} would both write {dst.name}; give them distinct names")
        seen[dst] = src
        rows.append({"input": src, "output": str(dst)})
    gate = gate if gate is not None else OutputGate()
    gate.add_inputs(*_local_inputs(inputs))
    for row in rows:
        gate.claim(row["output"], IMAGE, f"output of {row['input']}")
    return rows


def _local_inputs(inputs: list[str]) -> list[Path]:
    return [Path(_local(src)) for src in inputs if not is_uri(src)]


def read_bytes(uri: str) -> bytes:
    """A URI any pyarrow filesystem understands (s3://, gs://, hdfs://, file://), or a local path."""
    if not is_uri(uri):
        return Path(_local(uri)).read_bytes()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as f:
        return f.read()


RESUME_KEYS = ("model", "backend", "scale", "tile", "tile_overlap")  # a rerun with other ones redoes everything


def recorded_hashes(manifest: Path, header: dict | None = None) -> dict[str, str]:
    """output path -> the sha256 a previous run's manifest recorded for it (outputs it wrote or kept); none
    when that run's RESUME_KEYS differ from `header`'s (another model or tiling writes other bytes)."""
    try:
        previous = json.loads(manifest.read_text())
        items = previous.get("items", [])
    except (OSError, ValueError, AttributeError):
        return {}
    if header is not None and any(previous.get(k) != header.get(k) for k in RESUME_KEYS):
        return {}
    return {os.path.abspath(item["output"]): str(item["sha256"]) for item in items
            if isinstance(item, dict) and item.get("sha256") and item.get("status") in ("ok", "skipped")}


def output_is_complete(output: str, sha256: str) -> bool:
    """The resume check: the output exists and its bytes are the ones the manifest recorded."""
    try:
        return bool(sha256) and os.path.isfile(output) and file_sha256(output) == sha256
    except OSError:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def decode_row(row: dict, resume: bool = True) -> dict:
    """CPU task: skip an output whose bytes match the recorded sha256, else read and decode the input (image
    pickled for the actor)."""
    start = time.perf_counter()
    out = {"input": row["input"], "output": row["output"], "status": "pending", "error": "", "notes": "",
           "sha256": "", "image": b"", "seconds": 0.0}
    try:
        if resume and output_is_complete(row["output"], row.get("sha256", "")):
            out["status"], out["sha256"] = "skipped", row["sha256"]
        elif is_uri(row["input"]):
            out["image"] = pickle.dumps(decode_image(read_bytes(row["input"]), row["input"]))
        else:
            out["image"] = pickle.dumps(read_image(_local(row["input"])))
    except Exception as e:
        out["status"], out["error"] = "failed", _first_line(e)
    out["seconds"] = time.perf_counter() - start
    return out


class UpscaleActor:
    """The actor of the inference pool: one runner, loaded once in __init__, applied by an
    agileir.upscale.upscaler.Upscaler (the tiling rules of agileir-infer) to every image."""

    def __init__(self, spec: RunnerSpec, tiling: TilingOptions):
        from ..runtime import load_runner
        from ..upscale.upscaler import Upscaler

        self.upscaler = Upscaler(load_runner(spec, echo=lambda _: None), tiling)

    def __call__(self, batch: dict) -> dict:
        from ..upscale.upscaler import image_notes

        images = list(batch["image"])
        statuses, errors, seconds = list(batch["status"]), list(batch["error"]), list(batch["seconds"])
        notes, results = list(batch["notes"]), []
        for i, payload in enumerate(images):
            if statuses[i] != "pending":
                results.append(b"")
                continue
            start = time.perf_counter()
            try:
                image = pickle.loads(payload)
                plan = self.upscaler.plan(*image.rgb.shape[:2])
                notes[i] = "\n".join(image_notes(Path(str(batch["input"][i])).name, image, plan))
                results.append(pickle.dumps(self.upscaler.upscale_image(image, plan)))
            except Exception as e:
                statuses[i], errors[i] = "failed", _first_line(e)
                results.append(b"")
            seconds[i] = float(seconds[i]) + time.perf_counter() - start
        return {"input": batch["input"], "output": batch["output"], "status": statuses, "error": errors,
                "notes": notes, "sha256": batch.get("sha256", [""] * len(images)), "seconds": seconds,
                "image": results}


def encode_row(row: dict, gate: OutputGate | None = None) -> dict:
    """CPU task: write the upscaled image as an atomic PNG, recorded through `gate` (the run's, the output claimed
    in it; None: unrecorded), and hash it; `errno` keeps an OSError's code (ENOSPC stops the run)."""
    start = time.perf_counter()
    out = {k: row[k] for k in ("input", "output", "status", "error", "notes")}
    out["sha256"], out["errno"] = row.get("sha256", ""), 0
    if out["status"] == "pending":
        try:
            from ..upscale.writing import RunOutputs, write_upscaled

            output = Path(row["output"])
            outputs = RunOutputs(gate, OutputFolder(output.parent)) if gate is not None else None
            write_upscaled(output, pickle.loads(row["image"]), outputs)
            out["status"], out["sha256"] = "ok", file_sha256(output)
        except Exception as e:
            out["status"], out["error"] = "failed", _first_line(e)
            out["errno"] = (e.errno or 0) if isinstance(e, OSError) else 0
    out["seconds"] = round(float(row["seconds"]) + time.perf_counter() - start, 4)
    return out


@dataclass
class BatchResult:
    items: list[dict]
    seconds: float
    manifest: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    def summary(self) -> str:
        done = self.counts.get("ok", 0)
        rate = done / self.seconds if self.seconds > 0 else 0.0
        return (f"{len(self.items)} images: {done} upscaled, {self.counts.get('skipped', 0)} skipped (already done), "
                f"{self.failed} failed in {self.seconds:.1f} s ({rate:.2f} images/s); manifest {self.manifest}")


def local_ray_cpus(actors: int, cpus_per_actor: float, requested: int | None = None) -> int:
    """CPUs a local Ray instance declares: the actors' share plus one for decode/encode tasks, at least the
    machine's count only when asked (`requested`); bounded so a laptop run never claims a cluster's worth."""
    if requested:
        return int(requested)
    need = int(actors * cpus_per_actor + 0.999) + 1
    return max(need, min(os.cpu_count() or 1, 8))


class ClusterUnavailable(ConnectionError):
    """The Ray cluster of `--ray-address` cannot be reached, or a package its protocol needs is missing."""


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


def remove_temporaries(outputs: list[str]) -> None:
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


@dataclass(frozen=True)
class BatchOptions:
    """How a batch job runs on Ray: `actors` inference actors of `cpus_per_actor` CPUs (also their ONNX Runtime
    threads) and `gpus_per_actor` GPUs (None: 1 for TensorRT engines, else 0); the manifest path (None:
    OUTPUT/manifest.json); `resume` skips complete outputs; `address` of a running cluster (None: a local
    instance of `num_cpus` CPUs, None: local_ray_cpus), given `connect_timeout_s` to accept a connection."""

    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    manifest: str | None = None
    resume: bool = True
    address: str | None = None
    num_cpus: int | None = None
    connect_timeout_s: float = 20.0


def run_batch(spec: RunnerSpec, source: str, out_dir: str | Path, tiling: TilingOptions | None = None,
              options: BatchOptions | None = None, gate: OutputGate | None = None,
              echo: Callable[[str], Any] = print) -> BatchResult:
    """Upscale every image of `source` into `out_dir` with the runner `spec` describes, on Ray Data; writes the
    manifest, returns the result. `gate`: the run's output gate, the model files among its inputs (None: a gate
    of this call with the model file, without overwrite); the local inputs are added to it, and the manifest
    (before the model loads) and every output are claimed in it before anything is created, the cluster's
    address checked too; every file written is recorded in it. Raises OutputConflict, ClusterUnavailable,
    OSError (ENOSPC: the run stopped, the manifest holds what was done), KeyboardInterrupt (Ray shut down, no
    temporary file left)."""
    from ..runtime import load_runner

    tiling, options = tiling or TilingOptions(), options or BatchOptions()
    out_dir = Path(out_dir)
    inputs = resolve_inputs(source)
    if gate is None:  # the model, and a list file the inputs come from
        gate = OutputGate([spec.artifact, *(p for p in _local_inputs([source]) if p.is_file())])
    gate.add_inputs(*_local_inputs(inputs))
    manifest = gate.claim(options.manifest or out_dir / "manifest.json", MANIFEST_KIND, "--manifest")
    probe = load_runner(spec, activate=False, echo=lambda _: None)
    scale, backend = probe.scale, probe.backend
    gpus = options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if backend in ("tensorrt", "rtx") else 0.0  # an engine of either flavour needs a GPU
    rows = plan_outputs(inputs, out_dir, scale, gate)
    header = {"format": MANIFEST_FORMAT, "model": spec.artifact, "backend": backend, "scale": scale,
              "tile": tiling.tile_text, "tile_overlap": tiling.overlap, "actors": options.actors, "source": source,
              "output": str(out_dir)}
    hashes = recorded_hashes(manifest, header) if options.resume else {}
    for row in rows:
        row["sha256"] = hashes.get(os.path.abspath(row["output"]), "")
    _check_local_cpus(options)
    check_cluster(options.address, options.connect_timeout_s)
    echo(f"model: {probe.description} via {backend}, x{scale}; {len(rows)} images, {options.actors} actor(s) "
         f"({options.cpus_per_actor:g} CPU{', %g GPU' % gpus if gpus else ''} each)")

    start = time.perf_counter()
    with _ray_session(options, [r["output"] for r in rows]):
        _check_gpus(options, gpus)
        out_dir.mkdir(parents=True, exist_ok=True)
        items, full = _run_dataset(rows, spec, tiling, options, gpus, gate)
    seconds = time.perf_counter() - start
    if full is None:
        return _finish(items, seconds, manifest, header, gate)
    try:  # what was done, so that a rerun after freeing space resumes
        _finish(items, seconds, manifest, header, gate)
    except OSError:
        pass
    raise OSError(errno.ENOSPC, f"no space left on the device writing {full['output']}: the run stopped after "
                                f"{len(items)} of {len(rows)} images")


def _check_local_cpus(options: BatchOptions) -> None:
    """A local instance too small for the actor pool would wait forever: refused (ValueError) before it starts."""
    if options.address:
        return
    cpus = local_ray_cpus(options.actors, options.cpus_per_actor, options.num_cpus)
    need = options.actors * options.cpus_per_actor + 0.5  # the decode/encode tasks take 0.5 each
    if need > cpus:
        raise ValueError(f"--actors {options.actors} x --cpus-per-actor {options.cpus_per_actor:g} and the "
                         f"decode/encode tasks need {need:g} CPUs, but the local Ray instance has --num-cpus {cpus}")


def _check_gpus(options: BatchOptions, gpus: float) -> None:
    """A local instance without the GPUs the actors ask for would wait forever (ClusterUnavailable instead).
    A cluster (`--ray-address`) may add nodes on demand, so it is not checked."""
    import ray

    if options.address or not gpus:
        return
    have = float(ray.cluster_resources().get("GPU", 0))
    if have < gpus:
        raise ClusterUnavailable(f"each actor needs {gpus:g} GPU, and the local Ray instance sees {have:g} "
                                 "(--gpus-per-actor 0 runs a checkpoint or ONNX model on the CPU)")


@contextmanager
def _ray_session(options: BatchOptions, outputs: list[str]):
    """Ray for the job (started or joined), shut down after it, also on SIGINT/SIGTERM or a run cut short by a
    full disk, and then the temporary files of `outputs` that stopped workers left behind removed."""
    import ray

    started = init_ray(options.address, local_ray_cpus(options.actors, options.cpus_per_actor, options.num_cpus))
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


def _run_dataset(rows: list[dict], spec: RunnerSpec, tiling: TilingOptions, options: BatchOptions,
                 gpus: float, gate: OutputGate) -> tuple[list[dict], dict | None]:
    """The Ray Data job, its encode tasks writing through `gate` (every output claimed in it); returns its rows
    by input, and the row whose write hit ENOSPC (the job stops there)."""
    import ray

    ds: Any = ray.data.from_items(rows, override_num_blocks=min(len(rows), 200))
    ds = ds.map(decode_row, fn_kwargs={"resume": options.resume}, num_cpus=0.5)
    pool = ray.data.ActorPoolStrategy(size=options.actors)  # Ray >= 2.51's spelling of concurrency=actors
    ds = ds.map_batches(UpscaleActor, fn_constructor_kwargs={"spec": spec, "tiling": tiling}, compute=pool,
                        batch_size=1, num_cpus=options.cpus_per_actor, num_gpus=gpus or None, batch_format="numpy")
    ds = ds.map(encode_row, fn_kwargs={"gate": gate}, num_cpus=0.5)
    items, full = [], None
    for row in ds.iter_rows():
        items.append(row)
        if int(row.get("errno") or 0) == errno.ENOSPC:
            full = row
            break
    return sorted(items, key=lambda r: r["input"]), full


def _finish(rows: list[dict], seconds: float, manifest: Path, header: dict, gate: OutputGate) -> BatchResult:
    items = [{"input": r["input"], "output": r["output"], "status": r["status"], "error": r["error"] or None,
              "notes": [n for n in str(r["notes"]).split("\n") if n], "sha256": r.get("sha256") or None,
              "seconds": float(r["seconds"])} for r in rows]
    counts: dict[str, int] = {}
    for r in items:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    payload = {**header, "seconds": round(seconds, 3), "counts": counts, "items": items}
    gate.write_json(manifest, payload, MANIFEST_KIND)  # its folder made, if need be
    return BatchResult(items, seconds, manifest, counts)
