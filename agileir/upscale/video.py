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
* Decode, inference and encode overlap (agileir.upscale.pipeline): memory is bounded by `queue_size`.
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

import collections
import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.atomic import atomic_path
from ..io.images import to_uint8
from ..io.outputs import OutputConflict
from .memory import TilePlan
from .options import EncodingOptions, PipelineOptions
from .pipeline import run_pipeline
from .upscaler import Upscaler
from .writing import VIDEO, RunOutputs, write_output

# output suffix -> FFmpeg muxer (the temporary name has no usable suffix, so the format is always explicit)
VIDEO_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                  ".avi": "avi", ".ts": "mpegts"}
CRF_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"})


class VideoError(ValueError):
    """A video cannot be read, upscaled or written (bad input, unsupported option)."""


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_frame_size(src: str | Path) -> tuple[int, int]:
    """(height, width) of the first video stream of `src` (VideoError when there is none or it cannot be read)."""
    import av

    try:
        with av.open(str(src)) as c:
            if not c.streams.video:
                raise VideoError(f"{src}: no video stream")
            ctx = c.streams.video[0].codec_context
            return int(ctx.height), int(ctx.width)
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {src}: {e}") from None


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


def _stream_name(s) -> str:
    return f"{s.index}:{s.type}:{s.codec_context.name if s.codec_context else '?'}"


def _video_seconds(container, stream) -> float | None:
    """The video stream's own duration: from the stream, else its DURATION tag (Matroska), else the container's
    when the video is its only stream (the container's lasts as long as its longest stream: audio often)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:
        return container.duration / 1_000_000
    return None


def _estimate_total(container, stream, rate: Fraction | None, start: float, frames: int | None) -> int | None:
    total = None
    seconds = _video_seconds(container, stream)
    if stream.frames:
        total = int(stream.frames)
    elif seconds and rate:
        total = int(round(seconds * float(rate)))
    if total is not None and start and rate:
        total = max(0, total - int(round(start * float(rate))))
    if frames is not None:
        total = frames if total is None else min(total, frames)
    return total


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


def _checked_format(dst: Path, encoding: EncodingOptions) -> str:
    """The container format of `dst`, after checking the encoder and pixel format exist (VideoError)."""
    import av

    fmt = encoding.format or VIDEO_SUFFIXES.get(dst.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dst}: unknown container suffix (one of {', '.join(sorted(VIDEO_SUFFIXES))}, or pass format)")
    if not math.isfinite(encoding.start) or encoding.start < 0:
        raise VideoError(f"start must be a finite number of seconds >= 0, got {encoding.start}")
    if encoding.frames is not None and encoding.frames < 1:
        raise VideoError(f"frames must be >= 1, got {encoding.frames}")
    try:
        encoder = av.Codec(encoding.codec, "w")
    except (av.error.FFmpegError, ValueError, KeyError):
        raise VideoError(f"this FFmpeg build has no {encoding.codec!r} encoder") from None
    if encoder.type != "video":
        raise VideoError(f"{encoding.codec!r} is not a video encoder")
    formats = [f.name for f in encoder.video_formats or ()]
    if formats and encoding.pix_fmt not in formats:
        raise VideoError(f"{encoding.codec} cannot encode {encoding.pix_fmt!r} (one of {', '.join(formats)})")
    return fmt


def check_subsampling(pix_fmt: str, width: int, height: int, codec: str = "") -> None:
    """VideoError when `pix_fmt`'s chroma subsampling does not divide the output size (encoders refuse it)."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    step_w, step_h = 64 // max(1, fmt.chroma_width(64)), 64 // max(1, fmt.chroma_height(64))
    if width % step_w or height % step_h:
        raise VideoError(f"{codec + ' with ' if codec else ''}pixel format {pix_fmt} (chroma subsampled "
                         f"{step_w}x{step_h}) needs an output size divisible by {step_w}x{step_h}, and this video "
                         f"upscales to {width}x{height}: choose a pixel format without chroma subsampling "
                         f"(--pix-fmt yuv444p, or rgb24/bgr0 where the codec takes it)")


class _Transcode:
    """One run over an open input: its frames through the pipeline, encoded into the output, audio and
    subtitle packets copied (demuxed in the feeder thread, muxed in time order with the frames)."""

    def __init__(self, inp, src: Path, upscaler: Upscaler, encoding: EncodingOptions,
                 pipeline: PipelineOptions, strict: bool = False) -> None:
        if not inp.streams.video:
            raise VideoError(f"{src}: no video stream")
        self.inp, self.src, self.upscaler, self.encoding, self.pipeline = inp, src, upscaler, encoding, pipeline
        self.strict = strict
        self.vin = vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        self.side = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        self.dropped = [_stream_name(s) for s in inp.streams if s is not vin and s not in self.side]
        self.copied = [_stream_name(s) for s in self.side]
        self.rate = vin.average_rate or vin.guessed_rate
        self.tb: Any = vin.time_base
        self.total = _estimate_total(inp, vin, self.rate, encoding.start, encoding.frames)
        self.frame_s = float(1 / self.rate) if self.rate else 0.0
        self.pending_side: collections.deque = collections.deque()
        self.decode_errors = 0
        self.decoded = 0
        self.offset_pts: int | None = None
        self.offset_s: float = 0.0
        self.end_s: float | None = None
        h, w = int(vin.codec_context.height), int(vin.codec_context.width)
        check_subsampling(encoding.pix_fmt, w * upscaler.scale, h * upscaler.scale, encoding.codec)
        self.plan: TilePlan = upscaler.plan(h, w, share=pipeline.batch)
        self.notes = [self.plan.message(src.name, h, w)] if self.plan.auto else []
        if encoding.start > 0:
            inp.seek(int(encoding.start / self.tb), stream=vin, backward=True, any_frame=False)

    def frames(self):
        """The decoded frames of the range; side packets met on the way are queued for mux_side. A packet that
        fails to decode is counted and skipped; a demuxer error (truncated file) is counted and ends the input."""
        import av

        packets = self.inp.demux(self.vin, *self.side)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                self.decode_errors += 1  # the demuxer cannot go on: the rest of the file is lost
                return
            if packet.stream.index != self.vin.index:
                if not self._queue_side(packet):
                    return
                continue
            if self.end_s is not None:
                continue
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.decode_errors += 1
                continue
            for frame in decoded:
                if self._in_range(frame):
                    yield frame
                    if self.end_s is not None:
                        break

    def _queue_side(self, packet) -> bool:
        """Queue a side-stream packet for mux_side; False once packets are 1 s past the range's end."""
        if packet.dts is not None and packet.size:
            if self.end_s is not None and packet.pts is not None \
                    and float(packet.pts * packet.time_base) > self.end_s + 1.0:
                return False
            self.pending_side.append(packet)
        return True

    def _in_range(self, frame) -> bool:
        """Whether `frame` is one of the range's; counts it, fixes the output's time offset and the range's end."""
        t, start, limit = frame.time, self.encoding.start, self.encoding.frames
        if t is not None and t < start - 1e-6:
            return False
        if self.offset_pts is None:
            self.offset_pts = (frame.pts or 0) if start > 0 else 0
            self.offset_s = float(self.offset_pts * self.tb)
        self.decoded += 1
        if limit is not None and self.decoded >= limit:
            self.end_s = (t if t is not None else 0.0) + self.frame_s
        return True

    def damage(self) -> list[str]:
        """`warning:` lines for decode errors and frames missing against the container's count."""
        lines = []
        if self.decode_errors:
            lines.append(f"warning: {self.src.name}: {self.decode_errors} packet(s) could not be decoded "
                         f"(damaged or truncated video); their frames are missing from the output")
        if self.missing_frames:
            lines.append(f"warning: {self.src.name}: {self.missing_frames} of {self.total} frames the container "
                         f"announces were not decoded (truncated or damaged video)")
        return lines

    @property
    def missing_frames(self) -> int:
        if self.total is None or self.encoding.start > 0:  # after a seek the count is an estimate
            return 0
        return max(0, self.total - self.decoded)

    def decode(self, frame):
        pts = None if frame.pts is None else frame.pts - self.offset_pts
        return pts, frame.to_ndarray(format="rgb24").astype(np.float32) / np.float32(255.0)

    def infer(self, values):
        outs = self.upscaler.upscale_frames([rgb for _, rgb in values], self.plan)
        return [(pts, sr) for (pts, _), sr in zip(values, outs)]

    def encode(self, value):
        import av

        pts, sr = value
        frame = av.VideoFrame.from_ndarray(to_uint8(sr), format="rgb24")
        if frame.format.name != self.encoding.pix_fmt:
            frame = frame.reformat(format=self.encoding.pix_fmt)
        frame.pts, frame.time_base = pts, self.tb
        return frame

    def open_output(self, out, dst: Path, fmt: str) -> None:
        """The upscaled video stream, and a copy of each side stream, in the output container `out`."""
        import av

        enc, scale, ctx = self.encoding, self.upscaler.scale, self.vin.codec_context
        self.vout: Any = out.add_stream(enc.codec, rate=self.rate)
        self.size = (int(ctx.width) * scale, int(ctx.height) * scale)
        self.vout.width, self.vout.height = self.size
        self.vout.pix_fmt = enc.pix_fmt
        self.vout.time_base = self.tb
        self.vout.codec_context.time_base = self.tb
        if enc.crf is not None and enc.codec in CRF_CODECS:
            self.vout.options = {"crf": str(enc.crf)}
        self.out_of = {}
        for s in self.side:
            try:
                if hasattr(out, "add_stream_from_template"):  # PyAV >= 13
                    self.out_of[s.index] = out.add_stream_from_template(s)
                else:
                    self.out_of[s.index] = out.add_stream(template=s)  # type: ignore[call-overload]
            except (av.error.FFmpegError, ValueError) as e:
                raise VideoError(f"{dst.suffix} ({fmt}) cannot hold stream {_stream_name(s)}: {e}; try .mkv") from None

    def mux_side(self, out, until_s: float | None) -> None:
        """Mux the queued side packets up to `until_s` (None: all), dropping those outside the range."""
        shifted = self.encoding.start > 0
        while self.pending_side:
            packet = self.pending_side[0]
            t = float(packet.pts * packet.time_base) if packet.pts is not None else None
            if until_s is not None and t is not None and t > until_s:
                return
            self.pending_side.popleft()
            if t is not None and shifted and t < self.offset_s - 1e-6:
                continue  # before the range
            if t is not None and self.end_s is not None and t >= self.end_s:
                continue  # after the range
            if shifted:
                shift = int(round(self.offset_s / packet.time_base))
                packet.pts = packet.pts - shift if packet.pts is not None else None
                packet.dts = packet.dts - shift if packet.dts is not None else None
            packet.stream = self.out_of[packet.stream.index]
            out.mux(packet)

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
                self.mux_side(out, None)
            finally:
                out.close()
        return done

    def _run(self, out, progress: Callable[[VideoProgress], None] | None) -> int:
        began, done = time.perf_counter(), 0
        pipe = run_pipeline(self.frames(), self.decode, self.infer, self.encode,
                            replace(self.pipeline, fail_fast=True), batch_key=lambda v: v[1].shape)
        for result in pipe:
            if not result.ok:
                raise VideoError(f"{self.src}: frame {result.index}: {result.error}") from result.exception
            frame = result.value
            for packet in self.vout.encode(frame):
                out.mux(packet)
            done += 1
            self.mux_side(out, float(frame.pts * self.tb) if frame.pts is not None else None)
            if progress is not None:
                elapsed = time.perf_counter() - began
                fps = done / elapsed if elapsed > 0 else 0.0
                total = self.total
                eta = (total - done) / fps if total is not None and fps > 0 and total >= done else None
                progress(VideoProgress(done, total, fps, eta, elapsed))
        if done == 0:
            raise VideoError(f"{self.src}: no frame to upscale (start {self.encoding.start} s is past the end?)")
        if self.strict and self.damage():
            raise VideoError(self.damage()[0][len("warning: "):] + " (strict: nothing written)")
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
    fmt = _checked_format(dst, encoding)
    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {src}: {e}") from None
    with inp:
        run = _Transcode(inp, src, upscaler, encoding, pipeline, strict)
        began = time.perf_counter()
        done = write_output(dst, lambda path: run.write(path, fmt, progress), outputs, VIDEO)
        seconds = time.perf_counter() - began
    return VideoResult(dst, done, seconds, done / seconds if seconds > 0 else 0.0, run.size, run.rate, run.tb,
                       run.copied, run.dropped, run.notes + run.damage(), run.decode_errors, run.missing_frames)

__all__ = ["CRF_CODECS", "VIDEO_SUFFIXES", "VideoError", "VideoProgress", "VideoResult", "check_subsampling",
           "is_video_path", "upscale_video"]
