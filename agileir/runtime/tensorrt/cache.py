"""Engines built once and reused: a cache folder of engines keyed by everything that makes an engine valid.

The key is the ONNX file's sha256, its form and precision, the optimisation profile, the TensorRT flavour and
version, and the device: the GPU's name and compute capability for TensorRT (engines are specific to them), the
target compute capabilities for TensorRT-RTX (built ahead of time, no GPU needed). Entry `<key digest>/` holds
`engine.plan` (zlib-compressed for TensorRT-RTX, as engine.json records), `engine.json` (the sidecar) and
`key.json`. An entry whose key.json differs from the wanted key, whose engine's sha256 is not its sidecar's, or
that is incomplete, is rebuilt, never loaded. Concurrent builders of one key take a file lock; the winner builds
into a temporary folder that is renamed into place, the others then find the finished entry.

Staging folders (`.<digest>.<random>.building`, and `.stale` ones being removed) exist only while their
builder holds the key's lock; a builder that died (SIGKILL, power loss) releases it, so every cache access
removes the staging folders whose lock it can take (`sweep_orphans`). A folder at an entry's place that is not
a cache entry (no key.json of this format) is refused, never removed: only the toolkit's entries are replaced.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import secrets
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from ...io.atomic import file_lock, user_cache_dir
from ..artifacts import sidecar_path
from .builder import BuildOptions, build_engine, inspect_onnx
from .env import import_trt, require_gpu
from .runner import compress_engine

ENGINE, KEY = "engine.plan", "key.json"
KEY_FORMAT = "agileir-engine-cache/1"


def default_cache_dir() -> Path:
    """$AGILEIR_ENGINE_CACHE, else $XDG_CACHE_HOME/agileir/engines, else ~/.cache/agileir/engines."""
    return user_cache_dir("engines", "AGILEIR_ENGINE_CACHE")


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    form: str
    precision: str
    profile: tuple
    flavour: str
    version: str
    device: tuple  # ("gpu", name, compute capability) or ("rtx-targets", cc, ...)

    def to_dict(self) -> dict:
        """As key.json holds it (tuples become lists)."""
        return json.loads(json.dumps({"format": KEY_FORMAT, **asdict(self)}))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]


def engine_key(onnx_path: str | Path, options: BuildOptions) -> EngineKey:
    info = inspect_onnx(onnx_path)
    trt = import_trt(options.flavour)
    if options.flavour == "rtx":
        device: tuple = ("rtx-targets", *(options.compute_capabilities or ("default",)))
    else:
        gpu = require_gpu()
        device = ("gpu", gpu["name"], gpu["compute_capability"])
    p = options.profile
    return EngineKey(info.sha256, info.form, options.precision or info.precision,
                     (tuple(p.min), tuple(p.opt), tuple(p.max)), options.flavour, str(trt.__version__), device)


def entry_is_valid(entry: Path, key: EngineKey) -> bool:
    """True when `entry` holds a complete engine built for exactly `key`."""
    from ...models.load import file_sha256

    try:
        recorded = json.loads((entry / KEY).read_text())
        sidecar = json.loads(sidecar_path(entry / ENGINE).read_text())
    except (OSError, ValueError):
        return False
    return recorded == key.to_dict() and sidecar.get("engine_sha256") == file_sha256(entry / ENGINE)


def _lock_free(path: Path) -> bool:
    """True when no process holds the lock file `path` (taken and released at once)."""
    try:
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return False


def sweep_orphans(cache: Path) -> list[Path]:
    """Remove the staging folders of builders that are gone (their key's lock is free); returns them."""
    removed: list[Path] = []
    if not cache.is_dir():
        return removed
    for folder in cache.iterdir():
        if not (folder.name.startswith(".") and folder.name.endswith((".building", ".stale")) and folder.is_dir()):
            continue
        digest = folder.name[1:].split(".")[0]
        if _lock_free(cache / f".{digest}.lock"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _check_replaceable(entry: Path) -> None:
    """An existing entry folder is replaced only when it is one of the cache's (its key.json says so)."""
    if not entry.exists():
        return
    try:
        is_entry = json.loads((entry / KEY).read_text()).get("format") == KEY_FORMAT
    except (OSError, ValueError, AttributeError):
        is_entry = False
    if not is_entry:
        from ...io.gate import OutputConflict

        raise OutputConflict(f"{entry} is in the engine cache's place for this engine but is not a cache entry "
                             f"(no {KEY} of {KEY_FORMAT}): refusing to replace it; move it away")


def cached_engine(onnx_path: str | Path, options: BuildOptions = BuildOptions(), cache_dir: str | Path | None = None,
                  echo: Callable[[str], None] = print) -> tuple[Path, bool]:
    """(engine path in the cache, True when it was built now): the cached engine for `onnx_path` and `options`,
    built on first use."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    sweep_orphans(cache)
    key = engine_key(onnx_path, options)
    entry = cache / key.digest
    if entry_is_valid(entry, key):
        return entry / ENGINE, False
    with file_lock(cache / f".{key.digest}.lock"):
        if entry_is_valid(entry, key):  # another process built it while this one waited
            return entry / ENGINE, False
        _check_replaceable(entry)
        staging = cache / f".{key.digest}.{secrets.token_hex(4)}.building"
        staging.mkdir(parents=True)
        try:
            cache_file = cache / f"timing-{key.flavour}.cache" if options.flavour == "tensorrt" else None
            build_options = replace(options, timing_cache=cache_file)
            build_engine(onnx_path, staging / ENGINE, build_options, echo=echo)
            if options.flavour == "rtx":  # a TensorRT-RTX plan is ~7x redundant CUDA source (runner.compress_engine)
                compress_engine(staging / ENGINE)
            (staging / KEY).write_text(json.dumps(key.to_dict(), indent=2) + "\n")
            if entry.exists():  # stale or foreign: moved aside, then removed, never loaded
                stale = cache / f".{key.digest}.{secrets.token_hex(4)}.stale"
                entry.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            staging.rename(entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return entry / ENGINE, True
