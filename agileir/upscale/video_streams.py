"""The containers of a video run (PyAV, extra `video`): which streams there are, which frames of the range are
decoded, what is copied, and the checks made before any work. agileir.upscale.video runs the frames through the
pipeline; this module demuxes, decodes and remuxes around it.

`av` is imported inside the functions: this module (VIDEO_SUFFIXES, is_video_path) imports without it.
"""
from __future__ import annotations

import collections
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from .options import EncodingOptions

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


def stream_name(s) -> str:
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


def checked_format(dst: Path, encoding: EncodingOptions) -> str:
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


class InputStreams:
    """An open input's streams: the video stream's frames of the range (`frames`, run in the pipeline's feeder
    thread), its side streams' packets queued for `mux_side` (audio and subtitles copied in time order with the
    upscaled frames), and the damage met on the way."""

    def __init__(self, inp, src: Path, encoding: EncodingOptions) -> None:
        if not inp.streams.video:
            raise VideoError(f"{src}: no video stream")
        self.inp, self.src, self.encoding = inp, src, encoding
        self.vin = vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        self.side = [s for s in inp.streams if s.type in ("audio", "subtitle")]
        self.dropped = [stream_name(s) for s in inp.streams if s is not vin and s not in self.side]
        self.copied = [stream_name(s) for s in self.side]
        self.rate = vin.average_rate or vin.guessed_rate
        self.tb: Any = vin.time_base
        self.total = _estimate_total(inp, vin, self.rate, encoding.start, encoding.frames)
        self.frame_s = float(1 / self.rate) if self.rate else 0.0
        self.height, self.width = int(vin.codec_context.height), int(vin.codec_context.width)
        self.pending_side: collections.deque = collections.deque()
        self.out_of: dict = {}
        self.decode_errors = 0
        self.decoded = 0
        self.offset_pts: int | None = None
        self.offset_s: float = 0.0
        self.end_s: float | None = None
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

    def add_side_streams(self, out, dst: Path, fmt: str) -> None:
        """A copy of each side stream in the output container `out`."""
        import av

        for s in self.side:
            try:
                if hasattr(out, "add_stream_from_template"):  # PyAV >= 13
                    self.out_of[s.index] = out.add_stream_from_template(s)
                else:
                    self.out_of[s.index] = out.add_stream(template=s)  # type: ignore[call-overload]
            except (av.error.FFmpegError, ValueError) as e:
                raise VideoError(f"{dst.suffix} ({fmt}) cannot hold stream {stream_name(s)}: {e}; try .mkv") from None

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


__all__ = ["CRF_CODECS", "VIDEO_SUFFIXES", "InputStreams", "VideoError", "check_subsampling", "checked_format",
           "is_video_path", "stream_name", "video_frame_size"]
