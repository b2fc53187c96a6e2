"""The one function through which the upscale path writes a file (images of infer/folder/batch runs, videos).

Every write goes through the run's output gate (agileir.io.gate.OutputGate): the run claims all its outputs
before any work (an input of the run is never a target; an existing file agileir did not write is refused
unless --overwrite), and `write_output` records each written file in its folder's ledger, so that a rerun of
the same command replaces it without --overwrite.

    outputs = RunOutputs(OutputGate([model, *images], overwrite), OutputFolder(out_dir))
    outputs.gate.claim_all(plan.values(), IMAGE)        # before the model runs
    write_upscaled(plan[src], result, outputs)          # an atomic PNG, recorded as agileir's image
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from ..io.gate import OutputGate
from ..io.images import write_image
from ..io.outputs import OutputFolder
from .arrays import Upscaled

T = TypeVar("T")
IMAGE, VIDEO = "image", "video"  # the gate's kinds of output of the upscale path
_folder_lock = threading.Lock()  # encode threads of one run share its OutputFolder


@dataclass
class RunOutputs:
    """Where one run of the upscale path writes: `gate`, the run's OutputGate, with every output claimed before
    any work; `folder`, the output folder created on the first write (None: the file's folder must exist).
    It pickles (a gate does), so Ray tasks write through it."""

    gate: OutputGate
    folder: OutputFolder | None = None

    @classmethod
    def claimed(cls, plan: Iterable[tuple[Path, Path]], kind: str, folder: OutputFolder | None = None) -> RunOutputs:
        """A gate of its own, for a library call given none: the sources are its inputs, every output is claimed
        now (without --overwrite: an existing file agileir did not write is refused, OutputConflict)."""
        pairs = [(Path(src), Path(dst)) for src, dst in plan]
        gate = OutputGate([src for src, _ in pairs])
        for src, dst in pairs:
            gate.claim(dst, kind, f"output of {src}")
        return cls(gate, folder)


def write_output(dst: str | Path, write: Callable[[Path], T], outputs: RunOutputs, kind: str = IMAGE) -> T:
    """`write(dst)` writes the file atomically (agileir.io.atomic: a temporary name, renamed when complete); the
    gate of `outputs` records it as agileir's output of `kind` (durably, before the rename: `dst` must have been
    claimed, RuntimeError otherwise), so a failed record leaves the previous file in place; `outputs.folder`
    (created on the first write, so a run that writes nothing leaves no folder) counts it."""
    dst = Path(dst)
    folder = outputs.folder
    if folder is not None:
        with _folder_lock:
            folder.ensure()
    with outputs.gate.publishing(dst):
        value = write(dst)
    if not outputs.gate.was_published(dst):  # a writer that did not go through atomic_path: recorded after
        try:
            outputs.gate.record(dst, kind)
        except BaseException:
            dst.unlink(missing_ok=True)
            raise
    if folder is not None:
        with _folder_lock:
            folder.written += 1
    return value


def write_upscaled(dst: str | Path, result: Upscaled, outputs: RunOutputs) -> int:
    """An upscaled image as PNG, recorded as agileir's image; returns the bit depth written (8 or 16)."""
    return write_output(dst, lambda path: write_image(path, result.rgb, result.alpha, result.bit_depth), outputs)


__all__ = ["IMAGE", "VIDEO", "RunOutputs", "write_output", "write_upscaled"]
