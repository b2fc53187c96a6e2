"""Output-path planning, used by every command: what a run will write, checked against what it reads.

Rules (docs/reliability.md, "Outputs"):

* every output path (images, --json, reports, engines, export files) is compared with every input of the
  run (model, images, HR files, ONNX, calibration files), both resolved through symlinks (and hard links
  where both exist); a match is refused before any work, naming both files;
* a folder run plans all its output names first; two outputs with one name are refused the same way;
* folder naming: `NAME_x{s}.png`; when several inputs share a stem (`a.png`, `a.jpg`), the `.png` one keeps
  `a_x{s}.png` and every other gets its suffix in the name: `a_jpg_x{s}.png`;
* output folders are created when the first file is written (`OutputFolder`), so a run that writes nothing
  leaves no empty folder.

Writing goes through `agileir.io.gate.OutputGate`, which applies the first rule per claimed file and also
refuses existing files the toolkit did not write.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Iterable

from .gate import OutputConflict, OutputGate  # noqa: F401  (OutputConflict: re-exported)


def input_files(*paths: str | os.PathLike | None) -> list[Path]:
    """Files a run reads: a file as is, a folder as every file in it (one level, and BasicSR's
    HR/ and LR_bicubic/X*/ below a dataset folder)."""
    found: list[Path] = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            for entry in sorted(p.rglob("*")) if (p / "HR").is_dir() else sorted(p.iterdir()):
                if entry.is_file():
                    found.append(entry)
    return found


def check_outputs(outputs: Iterable[tuple[str | os.PathLike, str | os.PathLike | None]] | Iterable[str | os.PathLike],
                  inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse (OutputConflict) an output that is an input, or two outputs with one path, naming both: the
    OutputGate's rules without the one on existing files. `outputs` are paths or (path, what produces it)."""
    gate = OutputGate(inputs, overwrite=True)
    for item in outputs:
        out, source = (item if isinstance(item, tuple) else (item, None))
        gate.claim(out, "output", f"output of {source}" if source is not None else None)


def output_names(sources: list, scale: int) -> list[str]:
    """The file name of each upscaled source (paths or URIs) of a folder or batch run: `NAME_x{s}.png`, or
    `NAME_EXT_x{s}.png` for a non-PNG source that shares its NAME with another source (a.png, a.jpg)."""
    names = [PurePosixPath(str(src).rstrip("/")).name for src in sources]
    by_stem: dict[str, int] = defaultdict(int)
    for name in names:
        by_stem[PurePosixPath(name).stem] += 1
    out = []
    for name in names:
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix.lower()
        shared = by_stem[stem] > 1 and suffix != ".png"
        out.append(f"{stem}_{suffix.lstrip('.')}_x{scale}.png" if shared else f"{stem}_x{scale}.png")
    return out


def folder_outputs(images: list[Path], out_dir: Path, scale: int) -> dict[Path, Path]:
    """Output path of each image of a folder run (naming rule: :func:`output_names`)."""
    return {src: out_dir / name for src, name in zip(images, output_names(images, scale))}


class OutputFolder:
    """A folder created on the first write; `discard_if_unused()` removes it (and the parents it created)
    when nothing was written into it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._created: list[Path] = []
        self.written = 0

    def ensure(self) -> Path:
        if not self.path.is_dir():
            missing = []
            p = self.path
            while not p.exists() and p != p.parent:
                missing.append(p)
                p = p.parent
            self.path.mkdir(parents=True, exist_ok=True)
            self._created += reversed(missing)
        return self.path

    def discard_if_unused(self) -> None:
        if self.written:
            return
        for p in reversed(self._created):
            try:
                p.rmdir()
            except OSError:
                break
        self._created.clear()
