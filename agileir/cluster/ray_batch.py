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
same runner. Every output is planned and checked against every local input and the model files before any work
(`outputs.check_outputs`, as agileir-infer does): a run that would replace an input is refused. A failing image
becomes a row with status "failed" and its error; it never stops the job. Outputs that exist and open as a
PNG of the expected size are skipped ("skipped"), so a rerun resumes.

Ray is imported inside functions only: importing this module needs no Ray.
"""
from __future__ import annotations

import glob as globlib
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..io.atomic import write_json
from ..io.images import IMAGE_SUFFIXES, ImageError, decode_image, list_images, read_image
from ..io.outputs import OutputFolder, check_outputs, output_names
from ..runtime import RunnerSpec
from ..upscale.options import TilingOptions

MANIFEST_FORMAT = "agileir-batch/1"
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


def plan_outputs(inputs: list[str], out_dir: Path, scale: int, protected: tuple[str | Path, ...] = ()) -> list[dict]:
    """One row per input with its output path. Refused before any work (ValueError / OutputConflict): two
    inputs that would write the same output, and an output that is any local input of the run or a `protected`
    file (the model), by path, symlink or hard link."""
    rows: list[dict] = []
    seen: dict[Path, str] = {}
    for src, name in zip(inputs, output_names(inputs, scale)):
        dst = out_dir / name
        if dst in seen:
            raise ValueError(f"{src} and {seen[dst]} would both write {dst.name}; give them distinct names")
        seen[dst] = src
        rows.append({"input": src, "output": str(dst)})
    local = [Path(_local(src)) for src in inputs if not is_uri(src)]
    check_outputs([(row["output"], row["input"]) for row in rows], local + [Path(p) for p in protected])
    return rows


def read_bytes(uri: str) -> bytes:
    """A URI any pyarrow filesystem understands (s3://, gs://, hdfs://, file://), or a local path."""
    if not is_uri(uri):
        return Path(_local(uri)).read_bytes()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as f:
        return f.read()


def _expected_size(data_or_path, scale: int) -> tuple[int, int]:
    from PIL import Image as PILImage

    with PILImage.open(data_or_path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation: transposed
            w, h = h, w
    return w * scale, h * scale


def output_is_complete(output: str, expected: tuple[int, int]) -> bool:
    """The resume check: the PNG exists, decodes fully and has the expected size."""
    from PIL import Image as PILImage

    if not os.path.isfile(output):
        return False
    try:
        with PILImage.open(output) as im:
            if im.format != "PNG" or im.size != expected:
                return False
            im.load()
        return True
    except Exception:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def decode_row(row: dict, scale: int, resume: bool = True) -> dict:
    """CPU task: skip a complete output, else read and decode the input (image pickled for the actor)."""
    start = time.perf_counter()
    out = {"input": row["input"], "output": row["output"], "status": "pending", "error": "", "notes": "",
           "image": b"", "seconds": 0.0}
    try:
        if is_uri(row["input"]):
            data = read_bytes(row["input"])
            import io

            if resume and output_is_complete(row["output"], _expected_size(io.BytesIO(data), scale)):
                out["status"] = "skipped"
            else:
                out["image"] = pickle.dumps(decode_image(data, row["input"]))
        else:
            local = _local(row["input"])
            if resume and os.path.isfile(row["output"]):
                try:
                    complete = output_is_complete(row["output"], _expected_size(local, scale))
                except Exception:
                    complete = False  # an unreadable input: decode below reports why
                if complete:
                    out["status"] = "skipped"
            if out["status"] != "skipped":
                out["image"] = pickle.dumps(read_image(local))
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
                "notes": notes, "seconds": seconds, "image": results}


def encode_row(row: dict) -> dict:
    """CPU task: write the upscaled image as an atomic PNG."""
    start = time.perf_counter()
    out = {k: row[k] for k in ("input", "output", "status", "error", "notes")}
    if out["status"] == "pending":
        try:
            from ..upscale.writing import write_upscaled

            output = Path(row["output"])
            write_upscaled(output, pickle.loads(row["image"]), OutputFolder(output.parent))
            out["status"] = "ok"
        except Exception as e:
            out["status"], out["error"] = "failed", _first_line(e)
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


def init_ray(address: str | None, num_cpus: int, object_store_mb: int = 512) -> bool:
    """Connect to `address`, or start a local instance; returns whether this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=object_store_mb * 2**20,
                 log_to_driver=True)
    return True


@dataclass(frozen=True)
class BatchOptions:
    """How a batch job runs on Ray: `actors` inference actors of `cpus_per_actor` CPUs (also their ONNX Runtime
    threads) and `gpus_per_actor` GPUs (None: 1 for TensorRT engines, else 0); the manifest path (None:
    OUTPUT/manifest.json); `resume` skips complete outputs; `address` of a running cluster (None: a local
    instance of `num_cpus` CPUs, None: local_ray_cpus)."""

    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None
    manifest: str | None = None
    resume: bool = True
    address: str | None = None
    num_cpus: int | None = None


def run_batch(spec: RunnerSpec, source: str, out_dir: str | Path, tiling: TilingOptions | None = None,
              options: BatchOptions | None = None, protected: tuple[str | Path, ...] = (),
              echo: Callable[[str], Any] = print) -> BatchResult:
    """Upscale every image of `source` into `out_dir` with the runner `spec` describes, on Ray Data; writes the
    manifest, returns the result. Every output is checked against the inputs and `protected` (the model files)
    before Ray starts."""
    import ray

    from ..runtime import load_runner

    tiling, options = tiling or TilingOptions(), options or BatchOptions()
    out_dir = Path(out_dir)
    probe = load_runner(spec, activate=False, echo=lambda _: None)
    scale, backend = probe.scale, probe.backend
    gpus = options.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if backend in ("tensorrt", "rtx") else 0.0  # an engine of either flavour needs a GPU
    rows = plan_outputs(resolve_inputs(source), out_dir, scale, protected)
    manifest = Path(options.manifest) if options.manifest else out_dir / "manifest.json"
    check_outputs([manifest], [Path(_local(r["input"])) for r in rows if not is_uri(r["input"])] + list(protected))
    out_dir.mkdir(parents=True, exist_ok=True)
    echo(f"model: {probe.description} via {backend}, x{scale}; {len(rows)} images, {options.actors} actor(s) "
         f"({options.cpus_per_actor:g} CPU{', %g GPU' % gpus if gpus else ''} each)")

    started = init_ray(options.address, local_ray_cpus(options.actors, options.cpus_per_actor, options.num_cpus))
    start = time.perf_counter()
    try:
        ds: Any = ray.data.from_items(rows, override_num_blocks=min(len(rows), 200))
        ds = ds.map(decode_row, fn_kwargs={"scale": scale, "resume": options.resume}, num_cpus=0.5)
        pool = ray.data.ActorPoolStrategy(size=options.actors)  # Ray >= 2.51's spelling of concurrency=actors
        ds = ds.map_batches(UpscaleActor, fn_constructor_kwargs={"spec": spec, "tiling": tiling}, compute=pool,
                            batch_size=1, num_cpus=options.cpus_per_actor, num_gpus=gpus or None,
                            batch_format="numpy")
        ds = ds.map(encode_row, num_cpus=0.5)
        items = sorted(ds.take_all(), key=lambda r: r["input"])
    finally:
        if started:
            ray.shutdown()
    seconds = time.perf_counter() - start
    return _finish(items, seconds, manifest, {"format": MANIFEST_FORMAT, "model": spec.artifact, "backend": backend,
                                              "scale": scale, "tile": tiling.tile_text, "tile_overlap": tiling.overlap,
                                              "actors": options.actors, "source": source, "output": str(out_dir)})


def _finish(rows: list[dict], seconds: float, manifest: Path, header: dict) -> BatchResult:
    items = [{"input": r["input"], "output": r["output"], "status": r["status"], "error": r["error"] or None,
              "notes": [n for n in str(r["notes"]).split("\n") if n], "seconds": float(r["seconds"])} for r in rows]
    counts: dict[str, int] = {}
    for r in items:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    write_json(manifest, {**header, "seconds": round(seconds, 3), "counts": counts, "items": items})
    return BatchResult(items, seconds, manifest, counts)
