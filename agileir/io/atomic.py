"""Atomic file writes: data go to a temporary file beside the target, which is renamed onto it only when
complete, so a failed or interrupted run leaves neither a partial file nor an overwritten one.

Temporary names look like `.NAME.agileir-XXXXXXXXXXXX.tmp`: hidden, skipped by `list_images`, and
recognisable, so :func:`sweep_stale` can remove what a killed process (SIGKILL, power loss) left behind.
Temporaries in flight are remembered, so a SIGTERM handler can remove them (:func:`remove_in_flight`).
A hook registered for a target (:func:`before_publish`; the output gate's ledger line) runs on the complete
temporary file just before the rename; if it fails, the target is left as it was.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

TEMP_MARK = ".agileir-"
TEMP_SUFFIX = ".tmp"
_in_flight: set[Path] = set()
_before_publish: dict[str, Callable[[Path], None]] = {}  # target (its folder resolved) -> hook(temporary file)


def _target_key(path: Path) -> str:
    return os.path.join(os.path.realpath(path.parent), path.name)


@contextmanager
def before_publish(path: str | os.PathLike, hook: Callable[[Path], None]) -> Iterator[None]:
    """While open, :func:`atomic_path` writes onto `path` call `hook(temporary)` before renaming it into place."""
    key = _target_key(Path(path))
    previous = _before_publish.get(key)
    _before_publish[key] = hook
    try:
        yield
    finally:
        if previous is None:
            _before_publish.pop(key, None)
        else:
            _before_publish[key] = previous


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp_file(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARK in path.name and path.name.endswith(TEMP_SUFFIX)


def _create_temp_beside(path: Path) -> Path:
    # Not tempfile.NamedTemporaryFile: its 0600 mode would survive the rename; 0666 is filtered by the umask.
    while True:
        candidate = temp_name(path)
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on success it replaces `path`, on any error
    (KeyboardInterrupt included) it is removed and `path` is left as it was."""
    path = Path(path)
    try:
        tmp = _create_temp_beside(path)
    except OSError as e:  # name the target, never the temporary name
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
    _in_flight.add(tmp)
    try:
        try:
            yield tmp
            hook = _before_publish.get(_target_key(path)) if _before_publish else None
            if hook is not None:
                hook(tmp)
            os.replace(tmp, path)
        except OSError as e:
            # a write error (a full disk raises without a file name) or one naming the temporary: name the target
            if e.filename is None and str(path) not in str(e) or e.filename is not None and Path(e.filename) == tmp \
                    or tmp.name in str(e):
                raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
            raise
    finally:
        _in_flight.discard(tmp)
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, payload: Any, indent: int = 2) -> None:
    write_text(path, json.dumps(payload, indent=indent) + "\n")


def remove_in_flight() -> None:
    """Remove every temporary file this process is writing (called from signal handlers)."""
    for tmp in list(_in_flight):
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def sweep_stale(folder: str | os.PathLike, older_than_s: float = 3600.0) -> list[Path]:
    """Remove this tool's temporary files in `folder` older than `older_than_s` (left by a killed run);
    younger ones may belong to a run still in progress."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        if is_temp_file(p) and p not in _in_flight:
            try:
                if now - p.stat().st_mtime >= older_than_s:
                    p.unlink()
                    removed.append(p)
            except OSError:
                pass
    return removed


def user_cache_dir(name: str, env_var: str) -> Path:
    """$env_var, else $XDG_CACHE_HOME/agileir/<name>, else ~/.cache/agileir/<name> (the engine and plugin caches)."""
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agileir" / name


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `path`, created if needed: one builder at a time per cache entry."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
