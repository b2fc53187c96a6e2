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
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .atomic import atomic_path

LEDGER = ".agileir.outputs.jsonl"
OVERWRITE_HINT = "--overwrite replaces it"


class OutputConflict(ValueError):
    """An output would overwrite an input of the run, a file agileir did not write, or another output."""


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


def read_ledger(folder: str | os.PathLike) -> dict[str, Written]:
    """The ledger of `folder`: file name -> its last recorded write (malformed lines are ignored)."""
    entries: dict[str, Written] = {}
    try:
        lines = (Path(folder) / LEDGER).read_text(errors="replace").splitlines()
    except OSError:
        return entries
    for line in lines:
        try:
            d = json.loads(line)
            entries[d["name"]] = Written(str(d["name"]), str(d["sha256"]), int(d["size"]), str(d["kind"]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def record(path: str | os.PathLike, kind: str, sha256: str | None = None, size: int | None = None) -> None:
    """Append `path` (as written now, or with the given digest and size) to its folder's ledger."""
    path = Path(path)
    line = json.dumps({"name": path.name, "sha256": sha256 or file_sha256(path),
                       "size": path.stat().st_size if size is None else size, "kind": kind}) + "\n"
    fd = os.open(path.parent / LEDGER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


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


class OutputGate:
    """The outputs of one run, checked against its inputs and against files it did not write."""

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False) -> None:
        self.inputs: list[Path] = []
        self._input_paths: dict[str, Path] = {}  # real path -> input, and (device, inode) -> input: hard links
        self._input_inodes: dict[tuple[int, int], Path] = {}
        self.overwrite = overwrite
        self._claimed: dict[Path, tuple[Path, str]] = {}
        self._ledgers: dict[Path, dict[str, Written]] = {}  # read once per folder: a folder run claims many
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
        it is an input, claimed already, or an existing file that is not the toolkit's own of this kind."""
        path = Path(path)
        label = f" ({what})" if what else ""
        hit = self._input_hit(path)
        if hit is not None:
            raise OutputConflict(f"the output {path}{label} would overwrite the input {hit}: refusing "
                                 "(choose another output path)")
        key = Path(os.path.realpath(path))
        if key in self._claimed:
            first, first_what = self._claimed[key]
            raise OutputConflict(f"two outputs would be written to {path} ({first_what} and {what or kind}): "
                                 "refusing before any work")
        if path.name == LEDGER:
            raise OutputConflict(f"{path} is agileir's record of the files it wrote: refusing")
        if path.is_dir() and not path.is_symlink():
            raise OutputConflict(f"the output {path}{label} is a folder: refusing")
        if (path.exists() or path.is_symlink()) and not self.overwrite:
            folder = Path(os.path.realpath(path.parent))
            if folder not in self._ledgers:
                self._ledgers[folder] = read_ledger(folder)
            found = toolkit_kind(path, self._ledgers[folder])
            if found is None:
                raise OutputConflict(f"{path}{label} exists and was not written by agileir (or was changed since): "
                                     f"refusing to replace it ({OVERWRITE_HINT})")
            if found != kind:
                raise OutputConflict(f"{path} is agileir's {found}, not its {kind}: refusing to replace it "
                                     f"({OVERWRITE_HINT})")
        self._claimed[key] = (path, what or kind)
        return path

    def claim_all(self, paths: Iterable[str | os.PathLike], kind: str, what: str | None = None) -> list[Path]:
        return [self.claim(p, kind, what) for p in paths]

    def _ensure_claimed(self, path: Path, kind: str) -> None:
        if Path(os.path.realpath(path)) not in self._claimed:
            self.claim(path, kind)

    def record(self, path: str | os.PathLike, kind: str) -> None:
        """Mark a claimed file that library code wrote (engine, ONNX) as the toolkit's."""
        path = Path(path)
        if Path(os.path.realpath(path)) not in self._claimed:
            raise RuntimeError(f"{path} was written without being claimed first")
        record(path, kind)

    @contextmanager
    def atomic(self, path: str | os.PathLike, kind: str) -> Iterator[Path]:
        """A temporary path to write to; renamed onto `path` and recorded when the block completes."""
        path = Path(path)
        self._ensure_claimed(path, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            yield tmp
            # recorded before the rename: a run killed in between leaves a line that matches no file
            record(path, kind, file_sha256(tmp), tmp.stat().st_size)

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
