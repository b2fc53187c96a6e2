"""Video upscaling with PyAV (extra `video`): decode -> upscale (any runner, tiling) -> encode, pipelined.

    with load_runner("model.onnx") as runner:
        upscale_video(Upscaler(runner), "in.mp4", "out.mp4", EncodingOptions(codec="libx264", crf=18))

Rules:

* Every frame of the first video stream goes through `Upscaler.upscale_frames` (agileir.upscale.upscaler: the
  runner, tiling planned once from the frame size and the memory budget shared by the `batch` frames of one
  call), as RGB 8-bit; the output is encoded with the EncodingOptions' `codec` / `crf` / `pix_fmt`.
* The output goes through the run's output gate (agileir.io.gate, `RunOutputs`): claimed before any work (the
  input, a symlink or a hard link of it, is refused; so is an existing file agileir did not write, unless the
  gate overwrites), recorded as agileir's video once written, so a rerun replaces it.
* Frame rate and timestamps are kept: the output stream gets the input's average rate and time base, each
  frame keeps its pts (shifted so the output starts at 0 when `start` > 0). Containers impose their own time
  base (Matroska: 1/1000), so the frame *times* are what is kept, to the container's precision.
* Audio and subtitle streams are copied unchanged (packets remuxed, not re-encoded); with a frame range only
  their packets inside the range are kept. Other streams (data, attachments, further video streams) are left
  out and listed in `VideoResult.dropped_streams`.
* `dst` is written atomically (temporary file beside it, renamed when complete; the container format comes
  from `dst`'s suffix or `format`), so a failed or interrupted run leaves no partial file.
* Decode, inference and encode overlap (agileir.upscale.pipeline): memory is bounded by `queue_size`. The
  frames take the plan and infer steps of every image run (`Upscaler.plan`, `Upscaler.upscale_frames`, which
  agileir.upscale.stages calls for images); the containers are agileir.upscale.video_streams'.
* Damage is counted, not hidden: a packet that fails to decode is skipped (the run goes on) and counted in
  `VideoResult.decode_errors`; a demuxer error (a truncated file) ends the input there; frames missing against
  the container's count (the stream's frame count, else its duration x frame rate; whole-video runs from 0 s)
  are `VideoResult.missing_frames`. Either adds a `warning:` line to `notes`; with `strict` it is a VideoError
  and no output is written.
* Pixel formats with subsampled chroma (yuv420p: 2x2, yuv422p: 2x1, yuv411p: 4x1) need an output size the
  subsampling divides; an input whose upscaled size does not (a 33x25 video at x3 -> 99x75) is refused before
  any work, naming the pixel format (no padding: the output is always exactly `scale x` the input).

`av` is imported inside the functions: this module (VIDEO_SUFFIXES, is_video_path) imports without it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.atomic import atomic_path
from ..io.images import to_uint8
from ..io.pixels import decode as decode_pixels
from ..io.outputs import OutputConflict
from .memory import TilePlan
from .options import EncodingOptions, PipelineOptions
from .pipeline import run_pipeline
from .upscaler import Upscaler
from .video_streams import (CRF_CODECS, VIDEO_SUFFIXES, InputStreams, VideoError, check_subsampling,  # noqa: F401
                            checked_format, is_video_path, video_frame_size)
from .writing import VIDEO, RunOutputs, write_output


@dataclass
class VideoProgress:
    frames: int  # frames written so far
    total: int | None  # expected frames (estimate from the container; None when unknown)
    fps: float  # frames per second so far
    eta_s: float | None
    elapsed_s: float


@dataclass
class VideoResult:
    path: Path
    frames: int
    seconds: float
    fps: float  # processing speed, frames per second
    size: tuple[int, int]  # output width, height
    frame_rate: Fraction | None
    time_base: Fraction | None
    copied_streams: list[str] = field(default_factory=list)  # "1:audio:aac"
    dropped_streams: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # "note: ..." / "warning: ..." lines (tiling, damage)
    decode_errors: int = 0  # packets that failed to decode (skipped) or a demuxer error that ended the input
    missing_frames: int = 0  # frames the container announces that were not decoded (None known: 0)


def _checked_outputs(src: Path, dst: Path, outputs: RunOutputs | None) -> RunOutputs:
    """`outputs`, or (None) a gate of this call with `dst` claimed (OutputConflict becomes a VideoError)."""
    if not src.is_file():
        raise FileNotFoundError(f"input not found: {src}")
    if outputs is not None:
        return outputs
    try:
        return RunOutputs.claimed([(src, dst)], VIDEO)
    except OutputConflict as e:
        raise VideoError(str(e)) from None


class _Transcode:
    """One run over an open input (InputStreams): its frames through the pipeline (the tiling planned once from
    the frame size, the budget shared by the `batch` frames of one call), encoded into the output, the side
    streams' packets muxed in time order with the frames."""

    def __init__(self, streams: InputStreams, upscaler: Upscaler, encoding: EncodingOptions,
                 pipeline: PipelineOptions, strict: bool = False) -> None:
        self.streams, self.upscaler, self.encoding, self.pipeline = streams, upscaler, encoding, pipeline
        self.strict, self.src = strict, streams.src
        h, w = streams.height, streams.width
        check_subsampling(encoding.pix_fmt, w * upscaler.scale, h * upscaler.scale, encoding.codec)
        self.size = (w * upscaler.scale, h * upscaler.scale)
        self.plan: TilePlan = upscaler.plan(h, w, share=pipeline.batch)
        self.notes = [self.plan.message(streams.src.name, h, w)] if self.plan.auto else []

    def decode(self, frame):
        pts = None if frame.pts is None else frame.pts - self.streams.offset_pts
        return pts, decode_pixels(frame.to_ndarray(format="rgb24"), f"{self.streams.src}: frame").colour

    def infer(self, values):
        outs = self.upscaler.upscale_frames([rgb for _, rgb in values], self.plan)
        return [(pts, sr) for (pts, _), sr in zip(values, outs)]

    def encode(self, value):
        import av

        pts, sr = value
        frame = av.VideoFrame.from_ndarray(to_uint8(sr), format="rgb24")
        if frame.format.name != self.encoding.pix_fmt:
            frame = frame.reformat(format=self.encoding.pix_fmt)
        frame.pts, frame.time_base = pts, self.streams.tb
        return frame

    def open_output(self, out, dst: Path, fmt: str) -> None:
        """The upscaled video stream, and a copy of each side stream, in the output container `out`."""
        enc, streams = self.encoding, self.streams
        self.vout: Any = out.add_stream(enc.codec, rate=streams.rate)
        self.vout.width, self.vout.height = self.size
        self.vout.pix_fmt = enc.pix_fmt
        self.vout.time_base = streams.tb
        self.vout.codec_context.time_base = streams.tb
        if enc.crf is not None and enc.codec in CRF_CODECS:
            self.vout.options = {"crf": str(enc.crf)}
        streams.add_side_streams(out, dst, fmt)

    def write(self, dst: Path, fmt: str, progress: Callable[[VideoProgress], None] | None) -> int:
        """Encode the whole run into `dst` (atomically); returns the number of frames written."""
        import av

        with atomic_path(dst) as tmp:
            try:
                out = av.open(str(tmp), "w", format=fmt)
            except (av.error.FFmpegError, OSError) as e:
                raise VideoError(f"cannot write {dst}: {e}") from None
            try:
                self.open_output(out, dst, fmt)
                done = self._run(out, progress)
                for packet in self.vout.encode(None):
                    out.mux(packet)
                self.streams.mux_side(out, None)
            finally:
                out.close()
        return done

    def _run(self, out, progress: Callable[[VideoProgress], None] | None) -> int:
        began, done = time.perf_counter(), 0
        pipe = run_pipeline(self.streams.frames(), self.decode, self.infer, self.encode,
                            replace(self.pipeline, fail_fast=True), batch_key=lambda v: v[1].shape)
        for result in pipe:
            if not result.ok:
                raise VideoError(f"{self.src}: frame {result.index}: {result.error}") from result.exception
            frame = result.value
            for packet in self.vout.encode(frame):
                out.mux(packet)
            done += 1
            self.streams.mux_side(out, float(frame.pts * self.streams.tb) if frame.pts is not None else None)
            if progress is not None:
                elapsed = time.perf_counter() - began
                fps = done / elapsed if elapsed > 0 else 0.0
                total = self.streams.total
                eta = (total - done) / fps if total is not None and fps > 0 and total >= done else None
                progress(VideoProgress(done, total, fps, eta, elapsed))
        if done == 0:
            raise VideoError(f"{self.src}: no frame to upscale (start {self.encoding.start} s is past the end?)")
        if self.strict and self.streams.damage():
            raise VideoError(self.streams.damage()[0][len("warning: "):] + " (strict: nothing written)")
        return done


def upscale_video(upscaler: Upscaler, src: str | Path, dst: str | Path, encoding: EncodingOptions | None = None,
                  pipeline: PipelineOptions | None = None, progress: Callable[[VideoProgress], None] | None = None,
                  outputs: RunOutputs | None = None, strict: bool = False) -> VideoResult:
    """Upscale `src` into `dst` with `upscaler` (see the module docstring for the rules). `outputs`: the run's
    gate, its inputs `src` and the model files, `dst` claimed in it as a video (None: a gate of this call,
    RunOutputs.claimed). `strict`: a damaged input (decode errors, missing frames) is a VideoError and nothing is
    written, instead of `warning:` lines in the result's notes.

    Raises VideoError for bad input or options, agileir.upscale.pipeline.PipelineInterrupted on SIGINT/SIGTERM
    (no output then)."""
    import av

    encoding, pipeline = encoding or EncodingOptions(), pipeline or PipelineOptions()
    src, dst = Path(src), Path(dst)
    outputs = _checked_outputs(src, dst, outputs)
    fmt = checked_format(dst, encoding)
    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {src}: {e}") from None
    with inp:
        streams = InputStreams(inp, src, encoding)
        run = _Transcode(streams, upscaler, encoding, pipeline, strict)
        began = time.perf_counter()
        done = write_output(dst, lambda path: run.write(path, fmt, progress), outputs, VIDEO)
        seconds = time.perf_counter() - began
    return VideoResult(dst, done, seconds, done / seconds if seconds > 0 else 0.0, run.size, streams.rate, streams.tb,
                       streams.copied, streams.dropped, run.notes + streams.damage(), streams.decode_errors,
                       streams.missing_frames)


__all__ = ["CRF_CODECS", "VIDEO_SUFFIXES", "VideoError", "VideoProgress", "VideoResult", "check_subsampling",
           "is_video_path", "upscale_video", "video_frame_size"]
