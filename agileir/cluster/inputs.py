"""What a batch job reads: a folder, a glob, or a list file of paths/URIs; each input's output; URI bytes.

One rule for list files (LIST_SUFFIXES: .txt, .lst, .list; one path or URI a line, blank lines and '#' comments
ignored, relative paths relative to the list file), used by `agileir batch`'s output checks (source_files) and
by the job (resolve_inputs) alike.
"""
from __future__ import annotations

import glob as globlib
import os
from pathlib import Path

from ..io.gate import OutputGate
from ..io.images import IMAGE_SUFFIXES, Image, ImageError, decode_image, list_images, read_image
from ..io.outputs import input_files, output_names
from ..upscale.writing import IMAGE

LIST_SUFFIXES = (".txt", ".lst", ".list")


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """A local path or file:// URI as a path."""
    return path[len("file://"):] if path.startswith("file://") else path


def is_list_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in LIST_SUFFIXES


def list_entries(path: Path) -> list[str]:
    """The paths/URIs of a list file, relative paths made relative to its folder."""
    items = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        items.append(line if is_uri(line) or os.path.isabs(local_path(line)) else str(path.parent / line))
    return items


def resolve_inputs(source: str) -> list[str]:
    """Images of a folder (as agileir-infer lists them), a glob, a list file (LIST_SUFFIXES), or one file."""
    path = Path(local_path(source))
    if path.is_dir():
        return [str(p) for p in list_images(path)]
    if is_list_file(path):
        items = list_entries(path)
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


def local_inputs(inputs: list[str]) -> list[Path]:
    return [Path(local_path(src)) for src in inputs if not is_uri(src)]


def source_files(source: str) -> list[Path]:
    """Every local file a batch `source` reads, for the output gate: a folder's files, a glob's matches, a list
    file and the local files it lists."""
    path = Path(local_path(source))
    found = input_files(path) if path.exists() else [Path(p) for p in globlib.glob(source)]
    if is_list_file(path):
        found += [p for p in local_inputs(list_entries(path)) if p.is_file()]
    return found


def plan_outputs(inputs: list[str], out_dir: Path, scale: int, gate: OutputGate) -> list[Path]:
    """Each input's output path (agileir-infer's folder names), claimed in the run's `gate` with every local
    input added to its inputs. Refused before any work (ValueError /
    OutputConflict): two inputs that would write the same output, an output that is any input of the gate
    (local inputs, the model files), by path, symlink or hard link, and an existing file agileir did not write
    unless the gate overwrites."""
    outputs: list[Path] = []
    seen: dict[Path, str] = {}
    for src, name in zip(inputs, output_names(inputs, scale)):
        dst = out_dir / name
        if dst in seen:
            raise ValueError(f"{src} and {seen[dst]} would both write {dst.name}; give them distinct names")
        seen[dst] = src
        outputs.append(dst)
    gate.add_inputs(*local_inputs(inputs))
    for src, dst in zip(inputs, outputs):
        gate.claim(dst, IMAGE, f"output of {src}")
    return outputs


def read_bytes(uri: str) -> bytes:
    """A URI any pyarrow filesystem understands (s3://, gs://, hdfs://, file://), or a local path."""
    if not is_uri(uri):
        return Path(local_path(uri)).read_bytes()
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as f:
        return f.read()


def read_source(source: Path | str) -> Image:
    """The decode stage's reader for batch inputs: a local path (or file:// URI) or a remote URI."""
    source = str(source)
    if is_uri(source):
        return decode_image(read_bytes(source), source)
    return read_image(local_path(source))


__all__ = ["LIST_SUFFIXES", "is_uri", "list_entries", "local_inputs", "plan_outputs", "read_bytes", "read_source",
           "resolve_inputs", "source_files"]
