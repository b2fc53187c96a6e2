"""Video upscaling with PyAV (extra `video`): decode -> upscale (any runner, tiling) -> encode, pipelined.

    with load_runner("model.onnx") as runner:
        upscale_video(runner, "in.mp4", "out.mp4", codec="libx264", crf=18)

Rules:

* Every frame of the first video stream goes through `agileir.upscale.images.upscale_rgb` (the runner, tiling
  with `tile`), as RGB 8-bit; the output is encoded with `codec` / `crf` / `pix_fmt`.
* Frame rate and timestamps are kept: the output stream gets the input's average rate and time base, each
  frame keeps its pts (shifted so the output starts at 0 when `start` > 0). Containers impose their own time
  base (Matroska: 1/1000), so the frame *times* are what is kept, to the container's precision.
* Audio and subtitle streams are copied unchanged (packets remuxed, not re-encoded); with a frame range only
  their packets inside the range are kept. Other streams (data, attachments, further video streams) are left
  out and listed in `VideoResult.dropped_streams`.
* `dst` is written atomically (temporary file beside it, renamed when complete; the container format comes
  from `dst`'s suffix or `format`), so a failed or interrupted run leaves no partial file.
* Decode, inference and encode overlap (agileir.upscale.pipeline): memory is bounded by `queue_size`.

`av` is imported inside the functions: this module (VIDEO_SUFFIXES, is_video_path) imports without it.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..io.atomic import atomic_path
from ..io.images import to_uint8
from .images import upscale_rgb, upscale_rgbs
from .pipeline import run_pipeline

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


def _stream_name(s) -> str:
    return f"{s.index}:{s.type}:{s.codec_context.name if s.codec_context else '?'}"


def _estimate_total(container, stream, rate: Fraction | None, start: float, frames: int | None) -> int | None:
    total = None
    if stream.frames:
        total = int(stream.frames)
    elif container.duration and rate:
        total = int(round(container.duration / 1_000_000 * float(rate)))
    if total is not None and start and rate:
        total = max(0, total - int(round(start * float(rate))))
    if frames is not None:
        total = frames if total is None else min(total, frames)
    return total


def upscale_video(runner: Any, src: str | Path, dst: str | Path, *, codec: str = "libx264", crf: int | None = 18,
                  pix_fmt: str = "yuv420p", start: float = 0.0, frames: int | None = None, tile: int = 0,
                  tile_overlap: int = 16, progress: Callable[[VideoProgress], None] | None = None,
                  format: str | None = None, batch: int = 1, queue_size: int = 4, decode_workers: int = 2,
                  encode_workers: int = 2, handle_signals: bool = True) -> VideoResult:
    """Upscale `src` into `dst` with `runner` (an agileir Runner, or anything with .scale and .upscale or
    __call__ taking (B, 3, h, w) float32; .window aligns tiles). See the module docstring for the rules.

    `start` (seconds) and `frames` (count) select a range for trials. Raises VideoError for bad input or
    options, agileir.upscale.pipeline.PipelineInterrupted on SIGINT/SIGTERM (no output then)."""
    import av

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"input not found: {src}")
    if dst.resolve() == src.resolve():
        raise VideoError(f"refusing to overwrite the input {src}")
    fmt = format or VIDEO_SUFFIXES.get(dst.suffix.lower())
    if fmt is None:
        raise VideoError(f"{dst}: unknown container suffix (one of {', '.join(sorted(VIDEO_SUFFIXES))}, or pass format)")
    if start < 0 or (frames is not None and frames < 1):
        raise VideoError("start must be >= 0 and frames >= 1")
    try:
        encoder = av.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError, KeyError):
        raise VideoError(f"this FFmpeg build has no {codec!r} encoder") from None
    if encoder.type != "video":
        raise VideoError(f"{codec!r} is not a video encoder")
    formats = [f.name for f in encoder.video_formats or ()]
    if formats and pix_fmt not in formats:
        raise VideoError(f"{codec} cannot encode {pix_fmt!r} (one of {', '.join(formats)})")
    upscale = getattr(runner, "upscale", runner)
    scale, align = int(runner.scale), int(getattr(runner, "window", 1))

    try:
        inp = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {src}: {e}") from None
    with inp:
        if not inp.streams.video:
            raise VideoError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        side = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        dropped = [_stream_name(s) for s in inp.streams if s is not vin and s not in side]
        rate = vin.average_rate or vin.guessed_rate
        tb: Any = vin.time_base
        total = _estimate_total(inp, vin, rate, start, frames)
        if start > 0:
            inp.seek(int(start / tb), stream=vin, backward=True, any_frame=False)

        pending_side: collections.deque = collections.deque()  # side packets, demuxed in the feeder thread
        state: dict[str, Any] = {"offset_pts": None, "offset_s": 0.0, "last_s": None, "end_s": None}
        frame_s = float(1 / rate) if rate else 0.0

        def video_frames():
            n = 0
            for packet in inp.demux(vin, *side):
                if packet.stream.index != vin.index:
                    if packet.dts is not None and packet.size:
                        if state["end_s"] is not None and packet.pts is not None \
                                and float(packet.pts * packet.time_base) > state["end_s"] + 1.0:
                            return
                        pending_side.append(packet)
                    continue
                if state["end_s"] is not None:
                    continue
                for frame in packet.decode():
                    t = frame.time
                    if t is not None and t < start - 1e-6:
                        continue
                    if state["offset_pts"] is None:
                        state["offset_pts"] = (frame.pts or 0) if start > 0 else 0
                        state["offset_s"] = float(state["offset_pts"] * tb)
                    yield frame
                    n += 1
                    if frames is not None and n >= frames:
                        state["end_s"] = (t if t is not None else 0.0) + frame_s
                        break

        def decode(frame):
            pts = None if frame.pts is None else frame.pts - state["offset_pts"]
            return pts, frame.to_ndarray(format="rgb24").astype(np.float32) / np.float32(255.0)

        def infer(value):
            if batch == 1:
                pts, rgb = value
                return pts, upscale_rgb(upscale, rgb, scale, tile, tile_overlap, align=align)
            outs = upscale_rgbs(upscale, [rgb for _, rgb in value], scale, tile, tile_overlap, align=align)
            return [(pts, sr) for (pts, _), sr in zip(value, outs)]

        with atomic_path(dst) as tmp:
            try:
                out = av.open(str(tmp), "w", format=fmt)
            except (av.error.FFmpegError, OSError) as e:
                raise VideoError(f"cannot write {dst}: {e}") from None
            try:
                vout: Any = out.add_stream(codec, rate=rate)
                vout.width, vout.height = vin.codec_context.width * scale, vin.codec_context.height * scale
                vout.pix_fmt = pix_fmt
                vout.time_base = tb
                vout.codec_context.time_base = tb
                if crf is not None and codec in CRF_CODECS:
                    vout.options = {"crf": str(crf)}
                out_of = {}
                for s in side:
                    try:
                        if hasattr(out, "add_stream_from_template"):  # PyAV >= 13
                            out_of[s.index] = out.add_stream_from_template(s)
                        else:
                            out_of[s.index] = out.add_stream(template=s)  # type: ignore[call-overload]
                    except (av.error.FFmpegError, ValueError) as e:
                        raise VideoError(f"{dst.suffix} ({fmt}) cannot hold stream {_stream_name(s)}: {e}; "
                                         "try .mkv") from None

                def mux_side(until_s: float | None) -> None:
                    while pending_side:
                        packet = pending_side[0]
                        t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                        if until_s is not None and t is not None and t > until_s:
                            return
                        pending_side.popleft()
                        if t is not None and start > 0 and t < state["offset_s"] - 1e-6:
                            continue  # before the range
                        if t is not None and state["end_s"] is not None and t >= state["end_s"]:
                            continue  # after the range
                        if start > 0:
                            shift = int(round(state["offset_s"] / packet.time_base))
                            packet.pts = packet.pts - shift if packet.pts is not None else None
                            packet.dts = packet.dts - shift if packet.dts is not None else None
                        packet.stream = out_of[packet.stream.index]
                        out.mux(packet)

                def encode(value):
                    pts, sr = value
                    frame = av.VideoFrame.from_ndarray(to_uint8(sr), format="rgb24")
                    if frame.format.name != pix_fmt:
                        frame = frame.reformat(format=pix_fmt)
                    frame.pts, frame.time_base = pts, tb
                    return frame

                began, done = time.perf_counter(), 0
                pipe = run_pipeline(video_frames(), decode, infer, encode, decode_workers=decode_workers,
                                    encode_workers=encode_workers, queue_size=queue_size, batch=batch,
                                    fail_fast=True, batch_key=lambda v: v[1].shape, handle_signals=handle_signals)
                for result in pipe:
                    if not result.ok:
                        raise VideoError(f"{src}: frame {result.index}: {result.error}") from result.exception
                    frame = result.value
                    for packet in vout.encode(frame):
                        out.mux(packet)
                    done += 1
                    mux_side(float(frame.pts * tb) if frame.pts is not None else None)
                    if progress is not None:
                        elapsed = time.perf_counter() - began
                        fps = done / elapsed if elapsed > 0 else 0.0
                        eta = (total - done) / fps if total is not None and fps > 0 and total >= done else None
                        progress(VideoProgress(done, total, fps, eta, elapsed))
                if done == 0:
                    raise VideoError(f"{src}: no frame to upscale (start {start} s is past the end?)")
                for packet in vout.encode(None):
                    out.mux(packet)
                mux_side(None)
            finally:
                out.close()
        seconds = time.perf_counter() - began
        return VideoResult(dst, done, seconds, done / seconds if seconds > 0 else 0.0, (vout.width, vout.height),
                           rate, tb, [_stream_name(s) for s in side], dropped)


__all__ = ["CRF_CODECS", "VIDEO_SUFFIXES", "VideoError", "VideoProgress", "VideoResult", "is_video_path",
           "upscale_video"]
