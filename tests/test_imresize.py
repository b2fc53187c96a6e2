"""Tests for agileir.quality.imresize (MATLAB-equivalent bicubic resize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agileir.quality.imresize import (
    bicubic_degrade,
    cubic,
    imresize,
    imresize_torch,
    imresize_uint8,
    resize_matrix,
    resize_weights,
    upscale_bicubic,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_ROOT = REPO_ROOT.parent / "shared" / "data" / "benchmarks"
SET5 = BENCH_ROOT / "Set5"
SET5_NAMES = ["baby", "bird", "butterfly", "head", "woman"]


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# --------------------------------------------------------------------------- 1


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", SET5_NAMES)
def test_bicubic_degrade_matches_set5(name: str, scale: int) -> None:
    hr_path = SET5 / "HR" / f"{name}.png"
    lr_path = SET5 / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png"
    if not hr_path.is_file() or not lr_path.is_file():
        pytest.skip(f"Set5 benchmark data not found under {SET5} (need {hr_path.name}, {lr_path.name})")
    hr = _load_rgb(hr_path)
    lr_ref = _load_rgb(lr_path)
    lr = bicubic_degrade(hr, scale)
    assert lr.dtype == np.uint8
    assert lr.shape == lr_ref.shape
    diff = np.abs(lr.astype(np.int16) - lr_ref.astype(np.int16))
    assert diff.mean() <= 1.0  # acceptance criterion
    # Stronger: per-pass uint8 quantisation reproduces MATLAB bit-exactly.
    assert diff.max() <= 1
    assert diff.mean() < 1e-3


def test_upscale_bicubic_shape_and_dtype() -> None:
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    for s in (2, 3, 4):
        sr = upscale_bicubic(lr, s)
        assert sr.dtype == np.uint8
        assert sr.shape == (17 * s, 23 * s, 3)


def test_bicubic_degrade_modcrops() -> None:
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, size=(50, 37, 3), dtype=np.uint8)
    assert bicubic_degrade(hr, 4).shape == (12, 9, 3)
    assert bicubic_degrade(hr, 3).shape == (16, 12, 3)
    assert bicubic_degrade(hr[..., 0], 2).shape == (25, 18)


# --------------------------------------------------------------------------- 2


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 0.7, 2.0, 3.0, 1.5])
def test_numpy_torch_agree(scale: float) -> None:
    rng = np.random.default_rng(2)
    img = rng.standard_normal((31, 26, 3)) * 50.0 + 100.0
    ref = imresize(img, scale)
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    out = imresize_torch(x, scale).numpy().transpose(1, 2, 0)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)

    # Batched (B,C,H,W) path.
    xb = torch.stack([x, 2.0 * x])
    outb = imresize_torch(xb, scale).numpy()
    np.testing.assert_allclose(outb[0].transpose(1, 2, 0), ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(outb[1].transpose(1, 2, 0), 2.0 * ref, rtol=0, atol=1e-6)


def test_numpy_torch_agree_float32_unit_range() -> None:
    rng = np.random.default_rng(3)
    img = rng.random((40, 33, 3))
    for scale in (0.25, 4.0):
        ref = imresize(img, scale)
        x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32))
        out = imresize_torch(x, scale)
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy().transpose(1, 2, 0), ref, rtol=0, atol=1e-5)


def test_grayscale_and_output_shape() -> None:
    rng = np.random.default_rng(4)
    img = rng.random((20, 30))
    out = imresize(img, output_shape=(7, 45))
    assert out.shape == (7, 45)
    assert imresize(img, 0.5).shape == (10, 15)
    assert imresize(img, 1 / 3).shape == (7, 10)  # ceil(20/3)=7, 30/3=10 exactly
    t = imresize_torch(torch.from_numpy(img)[None], output_shape=(7, 45))
    np.testing.assert_allclose(t[0].numpy(), out, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- 3


@pytest.mark.parametrize("scale", [2.0, 3.0, 4.0, 1.5, 0.5, 1 / 3, 0.25])
def test_constant_image_stays_constant(scale: float) -> None:
    img = np.full((13, 19, 2), 42.5)
    out = imresize(img, scale)
    np.testing.assert_allclose(out, 42.5, rtol=0, atol=1e-10)
    out_t = imresize_torch(torch.from_numpy(img.transpose(2, 0, 1).copy()), scale)
    np.testing.assert_allclose(out_t.numpy(), 42.5, rtol=0, atol=1e-10)


@pytest.mark.parametrize("in_len,scale", [(16, 2.0), (16, 0.5), (27, 1 / 3), (10, 4.0), (64, 0.25), (5, 0.7)])
def test_weights_sum_to_one(in_len: int, scale: float) -> None:
    w, idx = resize_weights(in_len, scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert idx.min() >= 0 and idx.max() < in_len
    assert w.shape == idx.shape
    m = resize_matrix(in_len, scale)
    assert m.shape == (w.shape[0], in_len)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_weights_cached() -> None:
    a = resize_weights(32, 0.5)
    b = resize_weights(32, 0.5)
    assert a is b
    assert not a[0].flags.writeable


def test_upscale_constant_uint8() -> None:
    lr = np.full((9, 11, 3), 200, dtype=np.uint8)
    sr = upscale_bicubic(lr, 3)
    assert (sr == 200).all()


def test_uint8_saturates() -> None:
    # Bicubic overshoot at a hard edge must saturate, not wrap around.
    img = np.zeros((8, 8), dtype=np.uint8)
    img[:, 4:] = 255
    out = imresize_uint8(img, 3.0)
    assert out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    f = imresize(img.astype(np.float64), 3.0)
    assert f.max() > 255 and f.min() < 0  # float path does not clip


# --------------------------------------------------------------------------- 4


def test_cubic_kernel_values() -> None:
    assert cubic(0.0) == pytest.approx(1.0)
    assert cubic(1.0) == pytest.approx(0.0)
    assert cubic(0.5) == pytest.approx(0.5625)
    assert cubic(1.5) == pytest.approx(-0.0625)
    assert cubic(-0.5) == pytest.approx(0.5625)
    assert cubic(-1.5) == pytest.approx(-0.0625)
    assert cubic(2.0) == pytest.approx(0.0)
    assert cubic(2.5) == pytest.approx(0.0)
    x = np.linspace(-3, 3, 601)
    np.testing.assert_allclose(cubic(x), cubic(-x))
