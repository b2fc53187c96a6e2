"""The one function through which the upscale path writes a file (images of infer/folder/batch runs, videos).

An output gate (checks of what is about to be written) plugs in here, in `write_output`, for every command at once.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, TypeVar

from ..io.images import write_image
from ..io.outputs import OutputFolder
from .images import Upscaled

T = TypeVar("T")
_folder_lock = threading.Lock()  # encode threads of one run share its OutputFolder


def write_output(dst: str | Path, write: Callable[[Path], T], folder: OutputFolder | None = None) -> T:
    """`write(dst)` writes the file atomically (agileir.io.atomic: a temporary name, renamed when complete);
    `folder` (created on the first write, so a run that writes nothing leaves no folder) counts it."""
    dst = Path(dst)
    if folder is not None:
        with _folder_lock:
            folder.ensure()
    value = write(dst)
    if folder is not None:
        with _folder_lock:
            folder.written += 1
    return value


def write_upscaled(dst: str | Path, result: Upscaled, folder: OutputFolder | None = None) -> int:
    """An upscaled image as PNG; returns the bit depth written (8 or 16)."""
    return write_output(dst, lambda path: write_image(path, result.rgb, result.alpha, result.bit_depth), folder)


__all__ = ["write_output", "write_upscaled"]
