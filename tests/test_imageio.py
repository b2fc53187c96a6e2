import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from agileir.io.images import (
    Image,
    ImageError,
    list_images,
    read_image,
    to_gray,
    to_uint8,
    upscale_alpha,
    write_image,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def test_rgb_png_round_trip_is_exact(tmp_path: Path, rng) -> None:
    pixels = rng.integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
    source = tmp_path / "in.png"
    PILImage.fromarray(pixels).save(source)

    image = read_image(source)
    assert (image.mode, image.bit_depth, image.alpha) == ("RGB", 8, None)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (9, 13, 3)
    np.testing.assert_array_equal(to_uint8(image.rgb), pixels)

    assert write_image(tmp_path / "out.png", image.rgb) == 8
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "out.png")), pixels)


def test_rgba_png_keeps_alpha(tmp_path: Path, rng) -> None:
    pixels = rng.integers(0, 256, size=(6, 7, 4), dtype=np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "in.png")

    image = read_image(tmp_path / "in.png")
    assert image.mode == "RGBA" and image.rgb.shape == (6, 7, 3)
    assert image.alpha is not None and image.alpha.shape == (6, 7)
    np.testing.assert_array_equal(to_uint8(image.alpha), pixels[..., 3])

    write_image(tmp_path / "out.png", image.rgb, alpha=image.alpha)
    with PILImage.open(tmp_path / "out.png") as written:
        assert written.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(written), pixels)


def test_grayscale_stays_single_channel_and_converts(tmp_path: Path, rng) -> None:
    pixels = rng.integers(0, 256, size=(5, 4), dtype=np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "gray.png")
    image = read_image(tmp_path / "gray.png")
    assert image.mode == "L" and image.rgb.shape == (5, 4, 1) and image.is_grayscale
    rgb = image.to_rgb()
    assert rgb.shape == (5, 4, 3)
    np.testing.assert_array_equal(to_gray(rgb), image.rgb)


def test_gray_with_alpha_writes_la(tmp_path: Path, rng) -> None:
    gray = rng.random((4, 5, 1), dtype=np.float32)
    alpha = rng.random((4, 5), dtype=np.float32)
    write_image(tmp_path / "la.png", gray, alpha=alpha)
    image = read_image(tmp_path / "la.png")
    assert image.mode == "LA" and image.rgb.shape == (4, 5, 1)
    np.testing.assert_array_equal(to_uint8(image.alpha), to_uint8(alpha))


def test_palette_png_becomes_rgb(tmp_path: Path, rng) -> None:
    pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).quantize(16).save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.mode == "P" and image.rgb.shape == (8, 8, 3) and image.alpha is None


def test_16bit_grayscale_round_trip_keeps_precision(tmp_path: Path) -> None:
    values = np.array([[0, 1, 257, 1000], [30001, 40000, 65534, 65535]], dtype=np.uint16)
    PILImage.fromarray(values).save(tmp_path / "in16.png")

    image = read_image(tmp_path / "in16.png")
    assert image.bit_depth == 16 and image.rgb.shape == (2, 4, 1)
    np.testing.assert_array_equal(np.round(image.rgb[..., 0].astype(np.float64) * 65535), values)

    assert write_image(tmp_path / "out16.png", image.rgb, bit_depth=16) == 16
    with PILImage.open(tmp_path / "out16.png") as written:
        assert written.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(written), values)


def test_16bit_rgb_and_rgba_round_trip_keep_precision(tmp_path: Path, rng) -> None:
    """48-bit RGB and 64-bit RGBA PNGs (pypng; Pillow keeps 8 bits): read and written with all 16 bits."""
    for alpha in (None, rng.random((5, 4), dtype=np.float32)):
        rgb = rng.random((5, 4, 3), dtype=np.float32)
        assert write_image(tmp_path / "c16.png", rgb, alpha, bit_depth=16) == 16
        back = read_image(tmp_path / "c16.png")
        assert back.bit_depth == 16 and not back.precision_lost and back.rgb.shape == (5, 4, 3)
        assert np.abs(back.rgb - rgb).max() <= 0.5 / 65535 + 1e-7  # 16-bit steps, not 8-bit ones
        if alpha is not None:
            assert np.abs(back.alpha - alpha).max() <= 0.5 / 65535 + 1e-7


def test_16bit_rgb_without_pypng_falls_back_to_8bit(tmp_path: Path, rng, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "png", None)  # import png -> ImportError
    rgb = rng.random((3, 3, 3), dtype=np.float32)
    with pytest.warns(UserWarning, match="8-bit"):
        assert write_image(tmp_path / "rgb16.png", rgb, bit_depth=16) == 8
    assert read_image(tmp_path / "rgb16.png").bit_depth == 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_exif_orientation_matches_pillow(tmp_path: Path, rng, orientation) -> None:
    """The 16-bit path applies EXIF orientation as ImageOps.exif_transpose does (checked on the same pixels)."""
    import png

    wide = (rng.random((3, 5, 3)) * 65535).astype(np.uint16)
    plain = tmp_path / "p.png"
    png.Writer(5, 3, greyscale=False, bitdepth=16).write(open(plain, "wb"), wide.reshape(3, 15))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    # re-save with an eXIf chunk: copy the PNG and insert the chunk before IDAT
    import struct
    import zlib

    data = plain.read_bytes()
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF)
    at = data.index(b"IDAT") - 4
    (tmp_path / "o.png").write_bytes(data[:at] + chunk + data[at:])
    got = read_image(tmp_path / "o.png")
    expected8 = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.png").convert("RGB")))
    assert got.bit_depth == 16
    assert np.array_equal(np.round(got.rgb * 65535).astype(np.uint16) >> 8, expected8)


def test_truncated_png_raises_image_error_naming_file(tmp_path: Path, rng) -> None:
    good = tmp_path / "good.png"
    PILImage.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match="broken.png"):
        read_image(broken)


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_unknown_format_raises_image_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="junk.png") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_missing_file_raises_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_one_pixel_image_reads(tmp_path: Path) -> None:
    PILImage.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "one.png")
    image = read_image(tmp_path / "one.png")
    assert image.rgb.shape == (1, 1, 3)
    np.testing.assert_array_equal(to_uint8(image.rgb)[0, 0], [10, 20, 30])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    PILImage.new("RGB", (40, 20), (200, 100, 50)).save(tmp_path / "rotated.jpg", exif=exif)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.rgb.shape == (40, 20, 3)


def test_atomic_write_rejects_bad_shape_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(ImageError, match="shape"):
        write_image(target, np.zeros((4, 4, 2), dtype=np.float32))
    with pytest.raises(ImageError, match="NaN"):
        write_image(target, np.full((4, 4, 3), np.nan, dtype=np.float32))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_cleans_up_when_saving_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous content")

    def failing_save(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(PILImage.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, np.zeros((4, 4, 3), dtype=np.float32))
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"previous content"


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    write_image(tmp_path / "out.png", np.zeros((2, 2, 3), dtype=np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_clips_and_rounds(tmp_path: Path) -> None:
    rgb = np.array([[[-0.5, 0.4 / 255, 1.7]]], dtype=np.float32)
    write_image(tmp_path / "clip.png", rgb)
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "clip.png"))[0, 0], [0, 0, 255])
    np.testing.assert_array_equal(to_uint8(np.array([0.2, 0.50001, 1.0])), [51, 128, 255])


def test_write_rejects_non_png_suffix(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="PNG"):
        write_image(tmp_path / "out.jpg", np.zeros((2, 2, 3), dtype=np.float32))


def test_upscale_alpha_shape_and_range() -> None:
    alpha = np.zeros((3, 5), dtype=np.float32)
    alpha[1, 2] = 1.0
    up = upscale_alpha(alpha, 4)
    assert up.shape == (12, 20) and up.dtype == np.float32
    assert up.min() >= 0.0 and up.max() <= 1.0
    np.testing.assert_allclose(upscale_alpha(np.full((2, 2), 0.25), 3), 0.25, atol=1e-6)


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.tiff", "notes.txt", ".x.png.1234.tmp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff"]
    assert list_images(tmp_path / "a.jpg") == [tmp_path / "a.jpg"]
    with pytest.raises(ImageError, match="nope"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        list_images(tmp_path / "empty")


def test_image_dataclass_to_rgb_passthrough() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.float32)
    image = Image(rgb=rgb, alpha=None, bit_depth=8, mode="RGB")
    assert image.to_rgb() is rgb and not image.is_grayscale
