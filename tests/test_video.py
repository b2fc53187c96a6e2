"""agileir.upscale.video and `agileir video` (PyAV): frames, rate, timestamps and audio kept; frames equal per-image results."""
from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'agileir[video]')")

from agileir.io.atomic import is_temp_file  # noqa: E402
from agileir.io.images import to_uint8  # noqa: E402
from agileir.upscale.arrays import apply_to_rgbs  # noqa: E402
from agileir.models import build_model, save_safetensors  # noqa: E402
from agileir.upscale.options import EncodingOptions, PipelineOptions, TilingOptions  # noqa: E402
from agileir.upscale.tiling import DEFAULT_OVERLAP  # noqa: E402
from agileir.upscale.upscaler import Upscaler  # noqa: E402
from agileir.upscale.video import VideoError, VideoProgress  # noqa: E402
from agileir.upscale.video import upscale_video as _upscale_video  # noqa: E402
from conftest import TinyRunner  # noqa: E402
from test_models import TINY_SWINIR  # noqa: E402

N, W, H, FPS, SR = 12, 32, 24, 24, 48000


def upscale_video(runner, src, dst, *, tile=0, tile_overlap=DEFAULT_OVERLAP, batch=1, progress=None, **encoding):
    """The library call with its option objects built from keywords (tile 0: the frames whole, as expected_frames)."""
    return _upscale_video(Upscaler(runner, TilingOptions(tile, tile_overlap)), src, dst, EncodingOptions(**encoding),
                          PipelineOptions(batch=batch), progress)


def make_video(path, fmt, vcodec="ffv1", pix_fmt="yuv444p", acodec="aac", subtitles=False):
    """12 frames 32x24 of noise + moving gradient at 24 fps, a 440 Hz sine track (and an SRT track in mkv)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(vcodec, rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, pix_fmt
        aus = out.add_stream(acodec, rate=SR)
        aus.layout = "mono"
        ramp = np.linspace(0, 255, W)[None, :, None]
        for i in range(N):
            img = np.clip(rng.normal(0, 40, (H, W, 3)) + np.roll(ramp, 3 * i, axis=1), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, FPS)
            for p in vs.encode(f):
                out.mux(p)
        size = aus.codec_context.frame_size or 1024
        t = np.arange(SR * N // FPS) / SR
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), size):
            chunk = np.pad(samples[k:k + size], (0, max(0, k + size - len(samples))))
            af = av.AudioFrame.from_ndarray(chunk[None], format=aus.codec_context.format.name, layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, k, Fraction(1, SR)
            for p in aus.encode(af):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        for p in aus.encode(None):
            out.mux(p)
    return path


def video_frames(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(v)]


def side_packets(path, kind="audio"):
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return s.codec_context.name, [(round(float(p.pts * p.time_base), 3), bytes(p)) for p in c.demux(s) if p.size]


def stream_info(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return v.average_rate, v.time_base, v.codec_context.width, v.codec_context.height, v.codec_context.name


@pytest.fixture(scope="module")
def runner():
    return TinyRunner()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"mkv": make_video(d / "in.mkv", "matroska"),
            "mp4": make_video(d / "in.mp4", "mp4", vcodec="libx264", pix_fmt="yuv420p")}


def expected_frames(runner, path, tile=0):
    return [to_uint8(apply_to_rgbs(runner.upscale, [rgb.astype(np.float32) / 255], runner.scale, tile, align=runner.window)[0])
            for rgb, _ in video_frames(path)]


@pytest.mark.parametrize("src,dst,codec,pix_fmt,batch", [
    ("mkv", "out.mkv", "ffv1", "bgr0", 1),
    ("mp4", "out.mp4", "libx264rgb", "rgb24", 3),
], ids=["mkv-ffv1", "mp4-x264rgb-batch3"])
def test_lossless_upscale_keeps_frames_rate_timestamps_and_audio(runner, clips, tmp_path, src, dst, codec, pix_fmt,
                                                                  batch):
    src, dst = clips[src], tmp_path / dst
    seen: list[VideoProgress] = []
    result = upscale_video(runner, src, dst, codec=codec, crf=0, pix_fmt=pix_fmt, progress=seen.append, batch=batch)
    assert result.frames == N and result.size == (W * 3, H * 3)
    assert [p.frames for p in seen] == list(range(1, N + 1)) and all(p.fps > 0 for p in seen)
    assert seen[-1].total in (N, N + 1)  # an estimate (Matroska: from the container duration)
    rate_in, tb_in, *_ = stream_info(src)
    rate_out, tb_out, w, h, name = stream_info(dst)
    assert (rate_out, w, h, name) == (rate_in, W * 3, H * 3, "h264" if codec == "libx264rgb" else codec)
    assert rate_out == FPS
    if dst.suffix == ".mp4":
        assert tb_out == tb_in  # Matroska always stores 1/1000
    frames_in, frames_out = video_frames(src), video_frames(dst)
    assert [t for _, t in frames_out] == [t for _, t in frames_in]
    want = expected_frames(runner, src)
    for i, ((got, _), exp) in enumerate(zip(frames_out, want)):
        diff = np.abs(got.astype(int) - exp.astype(int)).max()
        assert diff <= (0 if batch == 1 else 1), (i, diff)
    assert side_packets(dst) == side_packets(src)  # audio copied packet for packet: codec, times, bytes
    assert side_packets(dst)[0] == "aac" and len(side_packets(dst)[1]) >= 20
    assert not [p for p in tmp_path.iterdir() if is_temp_file(p)]


def test_frame_range_and_default_lossy_codec(runner, clips, tmp_path):
    dst = tmp_path / "trial.mp4"
    result = upscale_video(runner, clips["mp4"], dst, start=0.2, frames=4, tile=16, tile_overlap=4)
    assert result.frames == 4
    frames = video_frames(dst)
    assert len(frames) == 4
    assert [round(t, 4) for _, t in frames] == [round(i / FPS, 4) for i in range(4)]  # starts at 0
    rate, _, w, h, name = stream_info(dst)
    assert (rate, w, h, name) == (FPS, W * 3, H * 3, "h264")
    codec, packets = side_packets(dst)
    assert codec == "aac" and packets and packets[0][0] >= 0 and packets[-1][0] < 4 / FPS
    _, source = side_packets(clips["mp4"])
    inside = {data for t, data in source if 5 / FPS - 1e-3 <= t < 9 / FPS}
    assert {data for _, data in packets} == inside  # the same packets, shifted


def test_bad_input_and_options(runner, clips, tmp_path):
    with pytest.raises(VideoError, match="unknown container suffix"):
        upscale_video(runner, clips["mkv"], tmp_path / "out.xyz")
    with pytest.raises(VideoError, match="cannot encode"):
        upscale_video(runner, clips["mkv"], tmp_path / "out.mkv", codec="ffv1", pix_fmt="rgb24")
    with pytest.raises(VideoError, match="no 'nope' encoder"):
        upscale_video(runner, clips["mkv"], tmp_path / "out.mkv", codec="nope")
    with pytest.raises(VideoError, match="overwrite the input"):
        upscale_video(runner, clips["mkv"], clips["mkv"])
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="cannot open video"):
        upscale_video(runner, tmp_path / "junk.mp4", tmp_path / "out.mp4")
    with pytest.raises(VideoError, match="no frame"):
        upscale_video(runner, clips["mkv"], tmp_path / "late.mkv", start=60.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]  # nothing written, no temporary left


def test_a_failing_frame_leaves_no_output(clips, tmp_path):
    class Broken:
        scale, calls = 2, 0

        def upscale(self, batch):
            Broken.calls += 1
            if Broken.calls == 5:
                raise RuntimeError("out of memory")
            return batch.repeat(2, axis=2).repeat(2, axis=3)

    with pytest.raises(VideoError, match="frame 4: RuntimeError: out of memory"):
        upscale_video(Broken(), clips["mkv"], tmp_path / "out.mkv", codec="ffv1", pix_fmt="bgr0")
    assert list(tmp_path.iterdir()) == []


def test_video_command(clips, tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    save_safetensors(build_model(TINY_SWINIR), ckpt)
    out = tmp_path / "cmd.mkv"
    r = subprocess.run([sys.executable, "-m", "agileir", "video", str(ckpt), str(clips["mkv"]), "-o", str(out),
                        "--frames", "3", "--codec", "ffv1", "--pix-fmt", "bgr0", "--max-memory", "1M"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 frames, 96x72" in r.stdout and "1:audio:aac" in r.stdout
    assert "memory budget" in r.stderr  # --tile auto with the budget, as agileir-infer
    assert len(video_frames(out)) == 3
    r = subprocess.run([sys.executable, "-m", "agileir", "video", str(ckpt), str(clips["mkv"]), "-o", str(out),
                        "--codec", "ffv1", "--pix-fmt", "rgb24"], capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines[-1].startswith("error: ffv1 cannot encode 'rgb24'"), r.stderr


def test_video_command_without_pyav_names_the_extra(clips, tmp_path):
    code = ("import sys; sys.modules['av'] = None; from agileir.cli import main; "
            f"sys.argv = ['agileir', 'video', {str(clips['mkv'])!r}, '-o', {str(tmp_path / 'o.mkv')!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and r.stderr.strip() == \
        "error: agileir video needs av (pip install 'agileir[video]')", r.stderr


def test_infer_command_on_a_video(clips, tmp_path):
    """`agileir-infer MODEL in.mp4 -o out.mp4`: the video path of agileir-infer (frames upscaled, audio kept)."""
    from click.testing import CliRunner

    from agileir.cli import main

    ckpt = tmp_path / "tiny.safetensors"
    save_safetensors(build_model(TINY_SWINIR), ckpt)
    out = tmp_path / "out.mp4"
    code = "import sys; from agileir.cli import infer_main; sys.argv[0] = 'agileir-infer'; infer_main()"
    r = subprocess.run([sys.executable, "-c", code, str(ckpt), str(clips["mp4"]), "-o", str(out), "--frames", "4",
                        "--batch", "2", "--crf", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "4 frames, 96x72" in r.stdout and "audio:aac" in r.stdout
    assert len(video_frames(out)) == 4 and stream_info(out)[2:4] == (W * 3, H * 3)
    assert side_packets(out)[0] == "aac" and side_packets(out)[1]  # audio copied
    assert not [p for p in tmp_path.iterdir() if is_temp_file(p)]
    r = CliRunner().invoke(main, ["infer", str(ckpt), str(clips["mp4"]), "-o", str(clips["mp4"])])
    assert r.exit_code == 2 and len([x for x in r.stderr.splitlines() if x.startswith("error:")]) == 1, r.output
    link = tmp_path / "hard_link.mp4"
    os.link(clips["mp4"], link)  # a hard link of the input is the input: `agileir video` refuses it too
    r = CliRunner().invoke(main, ["video", str(ckpt), str(clips["mp4"]), "-o", str(link)])
    assert r.exit_code == 2 and "would overwrite the input" in r.stderr, r.output
    link.unlink()
    no_av = ("import sys; sys.modules['av'] = None; from agileir.cli import infer_main; "
             f"sys.argv = ['agileir-infer', {str(clips['mp4'])!r}, '-o', {str(tmp_path / 'o.mp4')!r}]; infer_main()")
    r = subprocess.run([sys.executable, "-c", no_av], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and r.stderr.strip() == \
        "error: agileir-infer needs av (pip install 'agileir[video]')", r.stderr
