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
* is claimed twice in one run, or is a folder where a file goes, or a device, FIFO or socket (also through a
  symlink), even with `overwrite`;
* lies in a folder whose ledger cannot be used (below), even with `overwrite`;
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

import json
import os
import shutil
import stat
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .atomic import atomic_path, before_publish
from .ledger import (LEDGER, LedgerRefused, OutputConflict, Written, fsync_file, check_ledger,  # noqa: F401
                     file_sha256, read_ledger, record)

OVERWRITE_HINT = "--overwrite replaces it"


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


class _Inputs:
    """The inputs of a run, matched by real path and by (device, inode): symlinks and hard links."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self._real: dict[str, Path] = {}
        self._inodes: dict[tuple[int, int], Path] = {}

    def add(self, *paths: str | os.PathLike | None) -> None:
        for p in (Path(p) for p in paths if p is not None):
            self.paths.append(p)
            self._real.setdefault(os.path.realpath(p), p)
            try:
                st = p.stat()
                self._inodes.setdefault((st.st_dev, st.st_ino), p)
            except OSError:  # not there (yet): only its path can match
                pass

    def hit(self, path: Path) -> Path | None:
        found = self._real.get(os.path.realpath(path))
        if found is None:
            try:
                st = path.stat()
                found = self._inodes.get((st.st_dev, st.st_ino))
            except OSError:
                pass
        return found


class _Folders:
    """Folders a gate created: removed again while empty (a run that wrote nothing)."""

    def __init__(self) -> None:
        self.created: list[Path] = []

    def make(self, folder: Path) -> Path:
        missing, p = [], folder
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        folder.mkdir(parents=True, exist_ok=True)
        self.created += [m for m in reversed(missing) if m not in self.created]
        return folder

    def remove_unused(self) -> None:
        for p in sorted(self.created, key=lambda q: len(q.parts), reverse=True):  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass
        self.created = [p for p in self.created if p.exists()]


class OutputGate:
    """The outputs of one run, checked against its inputs and against files it did not write."""

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False) -> None:
        self._inputs = _Inputs()
        self.overwrite = overwrite
        self._claimed: dict[Path, tuple[Path, str, str]] = {}  # key -> (path, what, kind)
        self._ledgers: dict[Path, dict[str, Written]] = {}  # read once per folder: a folder run claims many
        self._published: dict[Path, str] = {}  # key -> sha256 recorded before its rename (publishing)
        self._folders = _Folders()
        self.add_inputs(*inputs)

    @property
    def inputs(self) -> list[Path]:
        return self._inputs.paths

    def add_inputs(self, *paths: str | os.PathLike | None) -> None:
        self._inputs.add(*paths)

    def claim(self, path: str | os.PathLike, kind: str, what: str | None = None) -> Path:
        """Reserve `path` for an output of `kind` (`what` names its producer in messages); refuse it now when
        it is an input, claimed already, an existing file that is not the toolkit's own of this kind, or in a
        folder whose ledger cannot be written."""
        path = Path(path)
        label = f" ({what})" if what else ""
        hit = self._inputs.hit(path)
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
        return self._folders.make(Path(folder))

    def remove_unused_folders(self) -> None:
        """Remove the folders this gate created that are still empty (a run that wrote nothing), deepest first."""
        self._folders.remove_unused()

    def _publish_hook(self, path: Path, kind: str):
        key = _key(path)

        def hook(tmp: Path) -> None:
            fsync_file(tmp)
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
