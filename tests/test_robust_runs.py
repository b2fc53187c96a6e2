"""Failure classes of agileir-infer, `agileir video` and `agileir batch`, one exit code each: bad input 2, full disk
2, missing package or unreachable cluster 3, failed items 1, interrupted 130/143; damaged videos reported.

The full-disk cases write into a 64 KiB tmpfs (skipped where it cannot be mounted: not root)."""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from agileir.io.atomic import is_temp_file
from agileir.models import build_model, save_safetensors
from test_models import TINY_SWINIR
from conftest import noise_video

SCALE = 3  # TINY_SWINIR


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("robust") / "tiny.safetensors"
    torch.manual_seed(0)
    save_safetensors(build_model(TINY_SWINIR), path)
    return path


def _agileir(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "agileir", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _noise_images(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(folder / f"img{i:02d}.png")
        PILImage.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(paths[-1])
    return paths




def _upscaler():
    from agileir.upscale.options import TilingOptions
    from agileir.upscale.upscaler import Upscaler
    from conftest import TinyRunner

    return Upscaler(TinyRunner(), TilingOptions(tile=0))


# --- video -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, option", [(["--start", "inf"], "--start"), (["--start", "nan"], "--start"),
                                          (["--start", "-1"], "--start"), (["--frames", "0"], "--frames")])
def test_video_range_options_are_checked_by_click(model, tmp_path, args, option):
    video = noise_video(tmp_path / "in.mkv", 2, 16, 12)
    r = _agileir("video", model, video, "-o", tmp_path / "out.mkv", *args)
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1 and f"'{option}'" in errors[0], r.stderr
    assert not (tmp_path / "out.mkv").exists()


def test_a_truncated_video_is_reported_and_strict_refuses_it(model, tmp_path):
    """6 frames in Matroska cut at half: 2 frames decode. The run says how many are missing (the container's
    duration announces 6); --strict makes it exit 2 with no output."""
    from agileir.upscale.video import VideoError, upscale_video

    whole = noise_video(tmp_path / "whole.mkv", 6, 16, 12)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])

    ok = upscale_video(_upscaler(), whole, tmp_path / "whole_x3.mkv")
    assert (ok.frames, ok.decode_errors, ok.missing_frames) == (6, 0, 0)
    assert not [n for n in ok.notes if n.startswith("warning:")]  # an intact video: no false alarm
    from test_video import make_video  # 12 frames and a longer AAC track: the container outlasts the video

    with_audio = upscale_video(_upscaler(), make_video(tmp_path / "av.mkv", "matroska"), tmp_path / "av_x3.mkv")
    assert (with_audio.frames, with_audio.decode_errors, with_audio.missing_frames) == (12, 0, 0)

    damaged = upscale_video(_upscaler(), cut, tmp_path / "cut_x3.mkv")
    assert damaged.frames < 6 and damaged.missing_frames == 6 - damaged.frames
    assert any(n.startswith("warning:") and f"{6 - damaged.frames} of 6 frames" in n for n in damaged.notes)
    with pytest.raises(VideoError, match="of 6 frames"):
        upscale_video(_upscaler(), cut, tmp_path / "strict.mkv", strict=True)
    assert not (tmp_path / "strict.mkv").exists()

    r = _agileir("video", model, cut, "-o", tmp_path / "cli.mkv")
    assert r.returncode == 0 and any(line.startswith("warning:") and "of 6 frames" in line
                                     for line in r.stderr.splitlines()), r.stderr
    r = _agileir("video", model, cut, "-o", tmp_path / "cli_strict.mkv", "--strict")
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1 and "of 6 frames" in errors[0], r.stderr
    assert not (tmp_path / "cli_strict.mkv").exists()


def test_a_packet_that_fails_to_decode_is_counted_and_skipped(tmp_path):
    """H.264 in MP4 with 200 bytes flipped a third of the way in: the bad packet is skipped, the run goes on."""
    from agileir.upscale.video import upscale_video

    clean = noise_video(tmp_path / "clean.mp4", 6, 32, 24, codec="libx264", pix_fmt="yuv420p", fmt="mp4")
    data = bytearray(clean.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 200):
        data[k] ^= 0x55
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    result = upscale_video(_upscaler(), bad, tmp_path / "bad_x3.mkv")
    assert result.frames < 6 and result.missing_frames == 6 - result.frames  # mp4 stores the frame count
    assert result.decode_errors >= 1
    assert any("could not be decoded" in n for n in result.notes)


def test_an_odd_size_for_a_subsampled_pixel_format_is_refused_before_any_work(tmp_path):
    """11x9 at x3 is 33x27: yuv420p (4:2:0) cannot hold it, so the run is refused naming the pixel format;
    yuv444p can, and the output is exactly 3x the input."""
    import av

    from agileir.upscale.options import EncodingOptions
    from agileir.upscale.video import VideoError, upscale_video

    video = noise_video(tmp_path / "odd.mkv", 2, 11, 9)
    with pytest.raises(VideoError, match="yuv420p.*33x27"):
        upscale_video(_upscaler(), video, tmp_path / "odd.mp4", EncodingOptions(codec="libx264", pix_fmt="yuv420p"))
    assert not (tmp_path / "odd.mp4").exists()
    result = upscale_video(_upscaler(), video, tmp_path / "odd444.mp4",
                           EncodingOptions(codec="libx264", pix_fmt="yuv444p"))
    assert result.size == (33, 27)
    with av.open(str(tmp_path / "odd444.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (33, 27)


def test_video_full_disk_is_exit_2_with_the_error_on_its_own_line(model, tmp_path, small_disk):
    video = noise_video(tmp_path / "in.mkv", 12, 32, 24)  # ffv1 96x72 noise: about 20 KB a frame
    r = _agileir("video", model, video, "-o", small_disk / "out.mkv", "--codec", "ffv1", "--pix-fmt", "yuv444p")
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert "frame " in r.stderr  # the progress line was shown, and ended before the error
    assert list(small_disk.iterdir()) == []  # neither output nor temporary file


def test_infer_full_disk_is_exit_2(model, tmp_path, small_disk):
    _noise_images(tmp_path / "in", 3, 64)  # 192x192 noise PNGs: about 110 KB each
    r = _agileir("infer", model, tmp_path / "in", "-o", small_disk / "out")
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert not [p for p in small_disk.rglob("*") if is_temp_file(p)]


# --- batch -----------------------------------------------------------------------------------------------------

def _need_ray():
    pytest.importorskip("ray.data", reason="agileir batch needs ray[data] (pip install 'agileir[batch]')")


@pytest.mark.parametrize("args", [["--tile", "-5"], ["--actors", "4", "--num-cpus", "2"],
                                  ["--ray-address", "head-without-port"]])
def test_batch_options_are_refused_before_ray_starts(model, tmp_path, args):
    """Exit 2 in seconds, nothing created (4 actors on a 2-CPU local instance used to wait forever)."""
    _need_ray()
    _noise_images(tmp_path / "in", 1, 8)
    r = _agileir("batch", model, tmp_path / "in", tmp_path / "out", *args, timeout=60)
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1 and args[0] in errors[0], r.stderr
    assert "Ray" not in r.stderr.replace("Ray instance", "")  # no Ray log line: it never started
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine may have a GPU")
def test_batch_gpu_actors_without_a_gpu_are_exit_3_not_a_wait(model, tmp_path):
    _need_ray()
    _noise_images(tmp_path / "in", 1, 8)
    r = _agileir("batch", model, tmp_path / "in", tmp_path / "out", "--gpus-per-actor", "1", "--num-cpus", "2",
                 timeout=90)
    errors = _errors(r.stderr)
    assert r.returncode == 3 and len(errors) == 1 and "GPU" in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_batch_unreachable_cluster_is_exit_3_quickly_with_nothing_created(model, tmp_path):
    _need_ray()
    _noise_images(tmp_path / "in", 1, 8)
    began = time.monotonic()
    r = _agileir("batch", model, tmp_path / "in", tmp_path / "out", "--ray-address", "127.0.0.1:1", timeout=60)
    errors = _errors(r.stderr)
    assert r.returncode == 3 and len(errors) == 1 and "127.0.0.1:1" in errors[0], r.stderr
    assert time.monotonic() - began < 30
    assert not (tmp_path / "out").exists()


def test_batch_without_ray_client_is_exit_3_naming_it(model, tmp_path):
    _need_ray()
    _noise_images(tmp_path / "in", 1, 8)
    code = ("import sys; sys.modules['grpc'] = None; from agileir.cli import main; "
            f"main(['batch', {str(model)!r}, {str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}, "
            "'--ray-address', 'ray://head:10001'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    errors = _errors(r.stderr)
    assert r.returncode == 3 and len(errors) == 1 and "ray[client]" in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_batch_resume_trusts_only_the_recorded_sha256(tmp_path):
    from agileir.cluster.actors import decode_task, pack, unpack
    from agileir.cluster.manifest import recorded_hashes
    from agileir.upscale.stages import ImageItem

    def decode_row(row, resume=True):
        item = unpack(decode_task(pack(ImageItem(row["input"], Path(row["output"]), sha256=row["sha256"])), resume))
        return {"status": "skipped" if item.reused else "pending" if item.image is not None else "failed"}

    src = _noise_images(tmp_path / "in", 1, 8)[0]
    out = tmp_path / "out.png"
    PILImage.fromarray(np.zeros((24, 24, 3), np.uint8)).save(out)  # right size, stale content
    good = hashlib.sha256(out.read_bytes()).hexdigest()
    row = {"input": str(src), "output": str(out)}
    assert decode_row({**row, "sha256": good})["status"] == "skipped"
    assert decode_row({**row, "sha256": "0" * 64})["status"] == "pending"  # other bytes: redone
    assert decode_row({**row, "sha256": ""})["status"] == "pending"  # nothing recorded: redone
    assert decode_row({**row, "sha256": good}, resume=False)["status"] == "pending"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"items": [{"output": str(out), "status": "ok", "sha256": good},
                                              {"output": "other.png", "status": "failed", "sha256": None}]}))
    assert recorded_hashes(manifest) == {str(out): good}
    header = {"model": "m.onnx", "backend": "onnxruntime", "scale": 3, "tile": "auto", "tile_overlap": 16}
    manifest.write_text(json.dumps({**header, "items": [{"output": str(out), "status": "ok", "sha256": good}]}))
    assert recorded_hashes(manifest, header) == {str(out): good}
    assert recorded_hashes(manifest, {**header, "tile": "64"}) == {}  # other tiling, other bytes: redo all


def test_batch_full_disk_stops_the_run_with_exit_2(model, tmp_path, small_disk):
    _need_ray()
    _noise_images(tmp_path / "in", 6, 40)  # 120x120 noise PNGs: about 43 KB each, the second one fills the disk
    r = _agileir("batch", model, tmp_path / "in", small_disk / "out", "--num-cpus", "2", timeout=180)
    errors = _errors(r.stderr)
    assert r.returncode == 2 and len(errors) == 1 and "no space left" in errors[0].lower(), r.stderr
    assert not [p for p in small_disk.rglob("*") if is_temp_file(p)]


def test_batch_sigterm_is_exit_143_with_ray_shut_down_and_no_partial_file(model, tmp_path):
    _need_ray()
    _noise_images(tmp_path / "in", 40, 48)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "agileir", "batch", str(model), str(tmp_path / "in"), str(out),
                             "--num-cpus", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*_x3.png")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    errors = _errors(stderr)
    assert proc.returncode == 143 and len(errors) == 1 and "terminated" in errors[0], stderr
    assert "SIGTERM received" not in stderr  # Ray's own handler (a stack dump, then SIGABRT) was not the one run
    assert not [p for p in out.iterdir() if is_temp_file(p)]
    assert len(list(out.glob("*_x3.png"))) < 40
