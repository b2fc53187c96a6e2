"""The ledger: `.agileir.outputs.jsonl` in a folder, one JSON line per file the toolkit wrote there (name, sha256,
size, kind); agileir.io.gate's record of what is its own. Opened without following a symlink and used only as a
regular file with one link; each line fsynced; a torn last line closed before the next (agileir.io.gate's
docstring has the rules)."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

LEDGER = ".agileir.outputs.jsonl"


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


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


