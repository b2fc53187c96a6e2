"""The output gate: every file a command writes passes through one `OutputGate`.

    gate = OutputGate(inputs=[model, *input_files(dataset)], overwrite=overwrite)
    gate.claim(report, "report")               # before any work: refuses now, naming the file
    ...                                        # the work
    gate.write_json(report, payload, "report") # atomic write, recorded as the toolkit's

Library code that writes a file itself (an engine builder, `onnx.save`) is gated the same way: `claim` first,
then `gate.record(path, kind)` once it is written. `gate.atomic(path, kind)` yields a temporary path to write
to (atomic_path) and records the result. A folder run (images, video frames) claims every planned name
before the first model call, then writes each through the gate:

    gate.claim_all(folder_outputs(images, out_dir, scale).values(), "image")
    with gate.atomic(out_path, "image") as tmp:
        write_png(tmp, pixels)

Claim from one thread before the work starts; the writes may then run in threads, and a gate pickles, so
Ray workers can write through it (the ledger takes appends from many processes).

Kinds are free-form strings naming what a file is ("image", "video", "export", "engine", "engine
description", "batch manifest", "triton repository", "... report"); only equality matters.

A claim is refused (`OutputConflict`, a ValueError: exit 2) when the target

* is an input of the run (compared through symlinks and hard links), even with `overwrite`;
* is claimed twice in one run, or is a folder where a file goes;
* exists and is not the toolkit's own earlier output of the same kind, unless `overwrite` (--overwrite).

How the toolkit recognises its own outputs: every gated write appends one line to a ledger file beside it,
`.agileir.outputs.jsonl` (JSON lines: name, sha256, size, kind). An existing file is the toolkit's when its
name's last ledger line has its size and sha256 (so a file the user edited since, or replaced, is not) and it
is not a symlink; it may then be replaced by an output of the same kind (a rerun), not of another (an engine
description never replaces an export.json). One rule for every kind of output (images, videos, JSON, ONNX,
engines, Triton configs), whatever its format; the ledger travels with the folder. Lines are appended
(O_APPEND, one write each), so concurrent writers of one folder (Ray actors) need no lock.

The ledger is bookkeeping the user never asked for, so it must never cost the user a file:

* it is opened without following a symlink (O_NOFOLLOW) and refused unless it is a regular file with one
  link (a symlink or hard link to an input image, a FIFO, a device): `OutputConflict` naming the folder;
* `claim` checks, before any work, that the ledger of the target's folder can be appended to (or created);
* a line is durable (fsync) before its file is published (renamed into place): a failed append leaves the
  previous file where it was, and a run killed in between leaves a line that matches no file;
* a torn last line (a writer killed mid-line) is closed with a newline before the next line is appended.

Library code that writes a claimed file through `agileir.io.atomic.atomic_path` (an ONNX file, a PNG, a video,
an engine) runs inside `gate.publishing()`: each claimed target is recorded just before its rename, the same
order as `gate.atomic`. Folders the gate creates (`make_folder`, `atomic`) and leaves empty are removed by
`remove_unused_folders()`.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .atomic import atomic_path, before_publish

LEDGER = ".agileir.outputs.jsonl"
OVERWRITE_HINT = "--overwrite replaces it"


class OutputConflict(ValueError):
    """An output would overwrite an input of the run, a file agileir did not write, or another output."""


class LedgerRefused(OutputConflict):
    """A folder's ledger cannot be used (a symlink, not a regular file, not writable): nothing is written there."""


@dataclass(frozen=True)
class Written:
    """One ledger line: a file the toolkit wrote."""
    name: str
    sha256: str
    size: int
    kind: str


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _refused(folder: Path, why: str) -> LedgerRefused:
    return LedgerRefused(f"cannot record outputs in {folder}: {why} (agileir records the files it writes in "
                         f"{LEDGER}); refusing before any work")


def _open_ledger(folder: Path, flags: int) -> int:
    """A descriptor of `folder`'s ledger: never through a symlink, only a regular file with one link (a hard link
    to an input would let the ledger's appends reach it); O_NONBLOCK so that a FIFO fails instead of hanging."""
    ledger = folder / LEDGER
    try:
        fd = os.open(ledger, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refused(folder, f"{ledger} is a symlink") from None
        if e.errno == errno.ENXIO:
            raise _refused(folder, f"{ledger} is not a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        why = "is not a regular file" if not stat.S_ISREG(st.st_mode) else "has other hard links"
        raise _refused(folder, f"{ledger} {why}")
    return fd


def read_ledger(folder: str | os.PathLike) -> dict[str, Written]:
    """The ledger of `folder`: file name -> its last recorded write (malformed lines are ignored; a ledger that
    is a symlink or not a regular file is not read: nothing there is the toolkit's)."""
    entries: dict[str, Written] = {}
    try:
        fd = _open_ledger(Path(folder), os.O_RDONLY)
    except (OSError, LedgerRefused):
        return entries
    with open(fd, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
    for line in lines:
        try:
            d = json.loads(line)
            entries[d["name"]] = Written(str(d["name"]), str(d["sha256"]), int(d["size"]), str(d["kind"]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def check_ledger(folder: str | os.PathLike) -> None:
    """Refuse (LedgerRefused, exit 2) when a line could not be appended to `folder`'s ledger: checked before any
    work, so that no run finds out after minutes of work, or after replacing a file."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return  # a path under a file: the write itself fails, naming it
    if not os.access(existing, os.W_OK | os.X_OK):  # the temporary file and the ledger are created there
        raise _refused(folder, f"{existing} is not writable")
    if existing == folder and os.path.lexists(folder / LEDGER):
        try:
            os.close(_open_ledger(folder, os.O_RDWR | os.O_APPEND))
        except OSError as e:
            raise _refused(folder, f"{folder / LEDGER}: {e.strerror}") from None


def record(path: str | os.PathLike, kind: str, sha256: str | None = None, size: int | None = None) -> None:
    """Append `path` (as written now, or with the given digest and size) to its folder's ledger, durably (fsync)."""
    path = Path(path)
    line = json.dumps({"name": path.name, "sha256": sha256 or file_sha256(path),
                       "size": path.stat().st_size if size is None else size, "kind": kind}).encode() + b"\n"
    folder = path.parent
    created = not os.path.lexists(folder / LEDGER)
    fd = _open_ledger(folder, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        end = os.fstat(fd).st_size
        if end and os.pread(fd, 1, end - 1) != b"\n":
            line = b"\n" + line  # a torn last line is closed, never glued to
        if os.write(fd, line) != len(line):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / LEDGER))
        os.fsync(fd)
    except BaseException:
        if created:  # an empty ledger of a failed first line: no trace of a write that did not happen
            (folder / LEDGER).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    if created:
        _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def toolkit_kind(path: str | os.PathLike, ledger: dict[str, Written] | None = None) -> str | None:
    """The kind of output `path` is when the toolkit wrote it and nobody changed it since; else None.
    `ledger`: its folder's, already read."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    entry = (read_ledger(path.parent) if ledger is None else ledger).get(path.name)
    if entry is None or entry.size != path.stat().st_size or entry.sha256 != file_sha256(path):
        return None
    return entry.kind


def _key(path: Path) -> Path:
    """A target's identity: its folder resolved, its own name not (a symlink target is the link, replaced)."""
    return Path(os.path.realpath(path.parent)) / path.name


class OutputGate:
    """The outputs of one run, checked against its inputs and against files it did not write."""

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False) -> None:
        self.inputs: list[Path] = []
        self._input_paths: dict[str, Path] = {}  # real path -> input, and (device, inode) -> input: hard links
        self._input_inodes: dict[tuple[int, int], Path] = {}
        self.overwrite = overwrite
        self._claimed: dict[Path, tuple[Path, str, str]] = {}  # key -> (path, what, kind)
        self._ledgers: dict[Path, dict[str, Written]] = {}  # read once per folder: a folder run claims many
        self._published: dict[Path, str] = {}  # key -> sha256 recorded before its rename (publishing)
        self._created: list[Path] = []  # folders this gate made
        self.add_inputs(*inputs)

    def add_inputs(self, *paths: str | os.PathLike | None) -> None:
        for p in (Path(p) for p in paths if p is not None):
            self.inputs.append(p)
            self._input_paths.setdefault(os.path.realpath(p), p)
            try:
                st = p.stat()
                self._input_inodes.setdefault((st.st_dev, st.st_ino), p)
            except OSError:  # not there (yet): only its path can match
                pass

    def _input_hit(self, path: Path) -> Path | None:
        hit = self._input_paths.get(os.path.realpath(path))
        if hit is None:
            try:
                st = path.stat()
                hit = self._input_inodes.get((st.st_dev, st.st_ino))
            except OSError:
                pass
        return hit

    def claim(self, path: str | os.PathLike, kind: str, what: str | None = None) -> Path:
        """Reserve `path` for an output of `kind` (`what` names its producer in messages); refuse it now when
        it is an input, claimed already, an existing file that is not the toolkit's own of this kind, or in a
        folder whose ledger cannot be written."""
        path = Path(path)
        label = f" ({what})" if what else ""
        hit = self._input_hit(path)
        if hit is not None:
            raise OutputConflict(f"the output {path}{label} would overwrite the input {hit}: refusing "
                                 "(choose another output path)")
        key = _key(path)
        if key in self._claimed:
            first, first_what, _ = self._claimed[key]
            raise OutputConflict(f"two outputs would be written to {path} ({first_what} and {what or kind}): "
                                 "refusing before any work")
        if path.name == LEDGER:
            raise OutputConflict(f"{path} is agileir's record of the files it wrote: refusing")
        if path.is_dir() and not path.is_symlink():
            raise OutputConflict(f"the output {path}{label} is a folder: refusing")
        try:
            mode = os.stat(path).st_mode  # through a symlink: -o /dev/stdout is a link to a terminal or a pipe
        except OSError:
            mode = None
        if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise OutputConflict(f"the output {path}{label} is not a file (a device, FIFO or socket): refusing, "
                                 "even with --overwrite")
        folder = key.parent
        if folder not in self._ledgers:
            check_ledger(path.parent)
            self._ledgers[folder] = read_ledger(folder)
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            found = toolkit_kind(path, self._ledgers[folder])
            if found is None:
                raise OutputConflict(f"{path}{label} exists and was not written by agileir (or was changed since): "
                                     f"refusing to replace it ({OVERWRITE_HINT})")
            if found != kind:
                raise OutputConflict(f"{path} is agileir's {found}, not its {kind}: refusing to replace it "
                                     f"({OVERWRITE_HINT})")
        self._claimed[key] = (path, what or kind, kind)
        return path

    def claim_all(self, paths: Iterable[str | os.PathLike], kind: str, what: str | None = None) -> list[Path]:
        return [self.claim(p, kind, what) for p in paths]

    def claimed(self) -> list[Path]:
        return [path for path, _, _ in self._claimed.values()]

    def _ensure_claimed(self, path: Path, kind: str) -> None:
        if _key(path) not in self._claimed:
            self.claim(path, kind)

    def record(self, path: str | os.PathLike, kind: str) -> None:
        """Mark a claimed file that library code wrote (engine, ONNX) as the toolkit's (a no-op for a file
        recorded before its rename inside `publishing()`, and unchanged since)."""
        path = Path(path)
        key = _key(path)
        if key not in self._claimed:
            raise RuntimeError(f"{path} was written without being claimed first")
        if key in self._published and self._published[key] == file_sha256(path):
            return
        record(path, kind)

    def make_folder(self, folder: str | os.PathLike) -> Path:
        """mkdir -p, remembering what it created (remove_unused_folders)."""
        folder = Path(folder)
        missing = []
        p = folder
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        folder.mkdir(parents=True, exist_ok=True)
        self._created += [m for m in reversed(missing) if m not in self._created]
        return folder

    def remove_unused_folders(self) -> None:
        """Remove the folders this gate created that are still empty (a run that wrote nothing), deepest first."""
        for p in sorted(self._created, key=lambda q: len(q.parts), reverse=True):
            try:
                p.rmdir()
            except OSError:
                pass
        self._created = [p for p in self._created if p.exists()]

    def _publish_hook(self, path: Path, kind: str):
        key = _key(path)

        def hook(tmp: Path) -> None:
            _fsync_file(tmp)
            digest = file_sha256(tmp)
            record(path, kind, digest, tmp.stat().st_size)
            self._published[key] = digest
        return hook

    @contextmanager
    def publishing(self, *paths: str | os.PathLike) -> Iterator[None]:
        """While open, an atomic write (agileir.io.atomic.atomic_path) onto one of `paths` (default: every claimed
        path) records its line durably just before the rename, so a published file is always the toolkit's."""
        targets = [Path(p) for p in paths] if paths else self.claimed()
        with ExitStack() as stack:
            for path in targets:
                kind = self._claimed[_key(path)][2] if _key(path) in self._claimed else None
                if kind is None:
                    raise RuntimeError(f"{path} would be written without being claimed first")
                stack.enter_context(before_publish(path, self._publish_hook(path, kind)))
            yield

    def was_published(self, path: str | os.PathLike) -> bool:
        return _key(Path(path)) in self._published

    @contextmanager
    def atomic(self, path: str | os.PathLike, kind: str) -> Iterator[Path]:
        """A temporary path to write to; recorded (durably) and then renamed onto `path` when the block completes."""
        path = Path(path)
        self._ensure_claimed(path, kind)
        self.make_folder(path.parent)
        # recorded before the rename: a failed record leaves the previous file; a run killed in between leaves a
        # line that matches no file
        with before_publish(path, self._publish_hook(path, kind)), atomic_path(path) as tmp:
            yield tmp

    def write_bytes(self, path: str | os.PathLike, data: bytes | memoryview, kind: str) -> None:
        with self.atomic(path, kind) as tmp:
            Path(tmp).write_bytes(data)

    def write_text(self, path: str | os.PathLike, text: str, kind: str) -> None:
        self.write_bytes(path, text.encode(), kind)

    def write_json(self, path: str | os.PathLike, payload: Any, kind: str, indent: int = 2) -> None:
        self.write_text(path, json.dumps(payload, indent=indent) + "\n", kind)

    def copy(self, src: str | os.PathLike, dst: str | os.PathLike, kind: str) -> None:
        with self.atomic(dst, kind) as tmp:
            shutil.copyfile(src, tmp)
