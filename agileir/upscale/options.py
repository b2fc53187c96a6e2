"""The option objects of the upscale path, with the one set of defaults every command shares.

`agileir-infer`, `agileir video` and `agileir batch` build these once (the click groups in agileir.cli.options
read their defaults from here) and pass them down; library callers construct them directly:

    Upscaler(runner, TilingOptions(tile=None, max_memory=parse_size("4G")))
    upscale_video(upscaler, "in.mp4", "out.mkv", EncodingOptions(codec="ffv1", pix_fmt="bgr0"),
                  PipelineOptions(batch=2))

They are frozen plain data: they pickle to Ray actors and worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .memory import parse_size, parse_tile
from .tiling import DEFAULT_OVERLAP


@dataclass(frozen=True)
class TilingOptions:
    """How images are cut for the model. `tile`: None = auto (the whole image unless its estimated peak memory
    is over the budget, then the largest window-aligned tile that fits; agileir.upscale.memory), 0 = always the
    whole image, N = tiles of N input pixels. `overlap`: input pixels shared by neighbouring tiles.
    `max_memory`: the budget in bytes (None: half of the memory available when the run starts)."""

    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    max_memory: int | None = None

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 0:
            raise ValueError(f"tile must be None (auto), 0 or a size in pixels, got {self.tile}")
        if self.overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {self.overlap}")

    @classmethod
    def parse(cls, tile: str | int | None = "auto", overlap: int = DEFAULT_OVERLAP,
              max_memory: str | None = None) -> TilingOptions:
        """From the command-line spellings: tile 'auto' | N, max_memory '4G' | '512M' | bytes (ValueError otherwise)."""
        return cls(parse_tile(tile), overlap, parse_size(max_memory) if max_memory else None)

    @property
    def tile_text(self) -> str:
        return "auto" if self.tile is None else str(self.tile)


@dataclass(frozen=True)
class EncodingOptions:
    """How a video is encoded, and which part of it is upscaled. `crf` reaches only the encoders that take one
    (agileir.upscale.video.CRF_CODECS); `format` overrides the container chosen from the output suffix;
    `start` (seconds) and `frames` (count, None: all) select a trial range."""

    codec: str = "libx264"
    crf: int | None = 18
    pix_fmt: str = "yuv420p"
    start: float = 0.0
    frames: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class PipelineOptions:
    """The staged run (agileir.upscale.pipeline): `batch` images or frames of one size per model call (the
    memory budget is shared by them), worker threads for decode and encode, `queue_size` bounding what is in
    flight, `fail_fast` stopping a folder run at its first unreadable file, `handle_signals` (SIGINT/SIGTERM
    finish what is in flight; only from the main thread)."""

    batch: int = 1
    decode_workers: int = 2
    encode_workers: int = 2
    queue_size: int = 4
    fail_fast: bool = False
    handle_signals: bool = True

    def __post_init__(self) -> None:
        if min(self.batch, self.decode_workers, self.encode_workers, self.queue_size) < 1:
            raise ValueError("batch, workers and queue size must be >= 1")


__all__ = ["EncodingOptions", "PipelineOptions", "TilingOptions"]
