import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
BENCHMARKS = SHARED_DATA / "benchmarks"


@pytest.fixture(scope="session")
def set5() -> Path:
    path = BENCHMARKS / "Set5"
    if not (path / "HR").is_dir():
        pytest.skip(f"benchmark data not found at {path} (../shared beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))


def saved_model(folder: Path, config, randomize: bool = False, name: str = "tiny.safetensors"):
    """A model of `config` built under seed 0 (through randomized() when asked), saved as folder/name as a
    safetensors checkpoint; returns (model, path)."""
    from agileir.models import build_model, save_safetensors

    torch.manual_seed(0)
    model = build_model(config)
    if randomize:
        model = randomized(model)
    path = folder / name
    save_safetensors(model, path)
    return model, path


def randomized(model):
    """Give BN layers non-trivial statistics and the zero-initialised projections real weights,
    so fuse/compat tests exercise every term."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


class TinyRunner:
    """A runner-shaped tiny SwinIR x3 (scale, window, upscale) for pipeline and video tests."""

    def __init__(self):
        from agileir.runtime.pytorch import torch_upscaler
        from agileir.models import build_model
        from test_models import TINY_SWINIR

        torch.manual_seed(0)
        model = build_model(TINY_SWINIR).eval()
        self.scale, self.window, self.upscale = model.scale, 8, torch_upscaler(model)


def noise_video(path: Path, frames: int, width: int, height: int, codec="ffv1", pix_fmt="yuv444p", fmt="matroska"):
    """A noise video of `frames` frames at 24 fps (PyAV; the test is skipped without it)."""
    av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'agileir[video]')")
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray((rng.random((height, width, 3)) * 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB file system: writes past it fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a 64 KiB tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)
