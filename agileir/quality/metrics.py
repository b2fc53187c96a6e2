"""PSNR and SSIM as computed by BasicSR, the reference used by SR papers, and the PSNR of raw model outputs.

The BasicSR functions take HxWxC (or HxW) arrays, uint8 or float, on [0, 255]; :func:`psnr` takes any two
float arrays of one shape (model outputs on [0, 1]).
Pure NumPy; results match BasicSR's ``calculate_psnr`` / ``calculate_ssim``
(RGB channel order here, BasicSR takes BGR, so the Y weights are reordered).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB over every element of two same-shape float arrays; inf when identical."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y channel (BT.601 studio swing, [16, 235]) of an RGB image on [0, 255]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an HxWx3 image, got shape {img.shape}")
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepare_pair(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, convert to float64 HxWxC, optionally take Y, then crop the border."""
    img, img2 = np.asarray(img), np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {img2.shape}")
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    img, img2 = img.astype(np.float64), img2.astype(np.float64)
    if test_y_channel and img.shape[2] == 3:
        img, img2 = rgb_to_y(img)[..., None], rgb_to_y(img2)[..., None]
    height, width = img.shape[:2]
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {height}x{width} image")
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    return img, img2


def calculate_psnr(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = True
) -> float:
    """PSNR in dB over all (cropped) pixels and channels; inf for identical images."""
    img, img2 = _prepare_pair(img, img2, crop_border, test_y_channel)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_1d(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _filter_valid(channel: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """2-D 'valid' correlation with outer(kernel_1d, kernel_1d), done separably."""
    size = kernel_1d.size
    rows = sliding_window_view(channel, size, axis=0) @ kernel_1d
    return sliding_window_view(rows, size, axis=1) @ kernel_1d


def _ssim_single_channel(x: np.ndarray, y: np.ndarray) -> float:
    kernel = _gaussian_1d()
    mu_x, mu_y = _filter_valid(x, kernel), _filter_valid(y, kernel)
    var_x = _filter_valid(x * x, kernel) - mu_x**2
    var_y = _filter_valid(y * y, kernel) - mu_y**2
    cov_xy = _filter_valid(x * y, kernel) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov_xy + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return float(np.mean(numerator / denominator))


def calculate_ssim(
    img: np.ndarray, img2: np.ndarray, crop_border: int, test_y_channel: bool = True
) -> float:
    """SSIM (11x11 Gaussian window, sigma 1.5, valid region); mean over channels."""
    img, img2 = _prepare_pair(img, img2, crop_border, test_y_channel)
    if min(img.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, "
            f"got {img.shape[0]}x{img.shape[1]}"
        )
    per_channel = [_ssim_single_channel(img[..., c], img2[..., c]) for c in range(img.shape[2])]
    return float(np.mean(per_channel))


def psnr_ssim_y(sr_uint8: np.ndarray, hr_uint8: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y with ``crop_border = scale``: the SR benchmark protocol.

    When HR is not a multiple of ``scale`` the SR output is smaller by less than
    ``scale`` pixels; HR is then mod-cropped (bottom/right rows and columns
    dropped) to SR's shape, as the benchmark datasets are prepared.
    """
    sr, hr = np.asarray(sr_uint8), np.asarray(hr_uint8)
    # Float inputs on [0, 1] would silently give meaningless numbers.
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise ValueError(f"psnr_ssim_y expects uint8 images, got {sr.dtype} and {hr.dtype}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    excess_h, excess_w = hr.shape[0] - sr.shape[0], hr.shape[1] - sr.shape[1]
    if sr.shape[2:] != hr.shape[2:] or not (0 <= excess_h < scale and 0 <= excess_w < scale):
        raise ValueError(
            f"SR shape {sr.shape} does not match HR shape {hr.shape} (even after mod-crop by {scale})"
        )
    hr = hr[: sr.shape[0], : sr.shape[1]]
    return (
        calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True),
        calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True),
    )
