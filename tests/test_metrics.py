import math

import numpy as np
import pytest

from agileir.quality.metrics import calculate_psnr, calculate_ssim, psnr_ssim_y, rgb_to_y

REL = 1e-10


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    clean = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    noise = rng.normal(0.0, 12.0, size=clean.shape)
    noisy = np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)
    return clean, noisy


def explicit_y(img: np.ndarray) -> np.ndarray:
    height, width, _ = img.shape
    out = np.zeros((height, width))
    for i in range(height):
        for j in range(width):
            r, g, b = (float(v) for v in img[i, j])
            out[i, j] = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return out


def explicit_psnr(a: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        total += (float(x) - float(y)) ** 2
    return 10.0 * math.log10(255.0**2 / (total / a.size))


def explicit_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM by looping over every 11x11 window position (valid region)."""
    g = [math.exp(-((k - 5) ** 2) / (2 * 1.5**2)) for k in range(11)]
    g = [v / sum(g) for v in g]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for top in range(a.shape[0] - 10):
        for left in range(a.shape[1] - 10):
            mx = my = mxx = myy = mxy = 0.0
            for u in range(11):
                for v in range(11):
                    w = g[u] * g[v]
                    x, y = float(a[top + u, left + v]), float(b[top + u, left + v])
                    mx += w * x
                    my += w * y
                    mxx += w * x * x
                    myy += w * y * y
                    mxy += w * x * y
            vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
            values.append(
                ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
            )
    return sum(values) / len(values)


def test_rgb_to_y_hand_computed_pixels() -> None:
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    y = rgb_to_y(pixels)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0], [235.0, 16.0, 81.481, 144.553, 40.966], rtol=1e-12)


def test_rgb_to_y_matches_explicit_formula(pair) -> None:
    clean, _ = pair
    np.testing.assert_allclose(rgb_to_y(clean), explicit_y(clean), rtol=1e-12)


def test_rgb_to_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((4, 4)))


def test_psnr_on_y_matches_explicit(pair) -> None:
    clean, noisy = pair
    expected = explicit_psnr(explicit_y(clean)[4:-4, 4:-4], explicit_y(noisy)[4:-4, 4:-4])
    assert calculate_psnr(clean, noisy, crop_border=4) == pytest.approx(expected, rel=REL)


def test_psnr_on_rgb_matches_explicit(pair) -> None:
    clean, noisy = pair
    expected = explicit_psnr(clean[2:-2, 2:-2], noisy[2:-2, 2:-2])
    got = calculate_psnr(clean, noisy, crop_border=2, test_y_channel=False)
    assert got == pytest.approx(expected, rel=REL)


def test_psnr_uint8_and_float_inputs_agree(pair) -> None:
    clean, noisy = pair
    assert calculate_psnr(clean, noisy, 0) == calculate_psnr(
        clean.astype(np.float32), noisy.astype(np.float64), 0
    )


def test_ssim_on_y_matches_explicit_loop(pair) -> None:
    clean, noisy = pair
    expected = explicit_ssim_channel(explicit_y(clean)[3:-3, 3:-3], explicit_y(noisy)[3:-3, 3:-3])
    assert calculate_ssim(clean, noisy, crop_border=3) == pytest.approx(expected, rel=REL)


def test_ssim_multichannel_is_mean_of_channels(pair) -> None:
    clean, noisy = pair
    clean, noisy = clean[:20, :24], noisy[:20, :24]
    expected = sum(explicit_ssim_channel(clean[..., c], noisy[..., c]) for c in range(3)) / 3
    got = calculate_ssim(clean, noisy, crop_border=0, test_y_channel=False)
    assert got == pytest.approx(expected, rel=REL)


def test_ssim_grayscale_2d(pair) -> None:
    clean, noisy = pair
    a, b = clean[..., 1], noisy[..., 1]
    assert calculate_ssim(a, b, 1) == pytest.approx(explicit_ssim_channel(a[1:-1, 1:-1], b[1:-1, 1:-1]), rel=REL)


def test_ssim_matches_scipy_valid_correlation(pair) -> None:
    signal = pytest.importorskip("scipy.signal")
    clean, noisy = pair
    x, y = rgb_to_y(clean), rgb_to_y(noisy)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g / g.sum(), g / g.sum())

    def filt(img: np.ndarray) -> np.ndarray:
        return signal.correlate2d(img, window, mode="valid")

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert calculate_ssim(clean, noisy, 0) == pytest.approx(ssim_map.mean(), rel=REL)


def test_identical_images(pair) -> None:
    clean, _ = pair
    assert calculate_psnr(clean, clean.copy(), 4) == float("inf")
    assert calculate_ssim(clean, clean.copy(), 4) == pytest.approx(1.0, rel=REL)


def test_crop_border_ignores_border_differences(pair) -> None:
    clean, _ = pair
    changed = clean.copy()
    changed[:3] = 255 - changed[:3]
    changed[:, -3:] = 0
    assert calculate_psnr(clean, changed, crop_border=3) == float("inf")
    assert calculate_ssim(clean, changed, crop_border=3) == pytest.approx(1.0, rel=REL)
    assert math.isfinite(calculate_psnr(clean, changed, crop_border=2))
    assert calculate_ssim(clean, changed, crop_border=2) < 1.0


def test_shape_mismatch_and_bad_arguments(pair) -> None:
    clean, noisy = pair
    with pytest.raises(ValueError, match="shapes differ"):
        calculate_psnr(clean, noisy[:-1], 0)
    with pytest.raises(ValueError, match="shapes differ"):
        calculate_ssim(clean, noisy[..., :1], 0)
    with pytest.raises(ValueError, match="crop_border"):
        calculate_psnr(clean, noisy, 16)
    with pytest.raises(ValueError, match="at least 11x11"):
        calculate_ssim(clean, noisy, 11)


def test_psnr_ssim_y_uses_scale_as_crop(pair) -> None:
    clean, noisy = pair
    psnr, ssim = psnr_ssim_y(noisy, clean, scale=4)
    assert psnr == calculate_psnr(noisy, clean, 4)
    assert ssim == calculate_ssim(noisy, clean, 4)


def test_psnr_ssim_y_mod_crops_hr(pair) -> None:
    clean, noisy = pair
    rng = np.random.default_rng(7)
    hr = rng.integers(0, 256, size=(35, 43, 3), dtype=np.uint8)
    hr[:32, :40] = clean
    assert psnr_ssim_y(noisy, hr, scale=4) == psnr_ssim_y(noisy, clean, scale=4)
    with pytest.raises(ValueError, match="mod-crop"):
        psnr_ssim_y(noisy, hr, scale=3)


def test_psnr_ssim_y_rejects_float_inputs(pair) -> None:
    clean, noisy = pair
    with pytest.raises(ValueError, match="uint8"):
        psnr_ssim_y(noisy / 255.0, clean, scale=2)
