"""Image reading and writing for super-resolution.

Colour data is handled as float32 arrays on [0, 1] (HxWx3, or HxWx1 for
grayscale); alpha is kept separately because SR models only see colour.

Pillow 13 decodes 48-bit RGB and 64-bit RGBA PNGs to 8 bits per channel (16-bit
LA becomes 8-bit RGBA) and writes 16 bits for grayscale only: those PNGs are read
and written with pypng (pure Python), so a 16-bit PNG in is a 16-bit PNG out.
Without pypng they fall back to 8 bits (`precision_lost`, a warning on write).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .pixels import decode as decode_pixels
from .pixels import quantize, to_gray, upscale_alpha  # noqa: F401  (to_gray, upscale_alpha: re-exported)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

_SIXTEEN_BIT_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_CONVERT_TO_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})


class ImageError(ValueError):
    """An image file cannot be read, listed or written."""


@dataclass
class Image:
    rgb: np.ndarray  # float32 HxWx3 or HxWx1 on [0, 1]
    alpha: np.ndarray | None  # float32 HxW on [0, 1]
    bit_depth: int  # 8 or 16
    mode: str  # Pillow mode of the source file, e.g. 'RGB', 'LA', 'I;16'
    source_bits: int = 8  # bits per channel in the file (16 for 48-bit RGB that Pillow decodes to 8 bits)

    @property
    def precision_lost(self) -> bool:
        """The file has more bits per channel than were decoded (Pillow reads 48/64-bit RGB(A) as 8-bit)."""
        return self.source_bits > self.bit_depth

    @property
    def is_grayscale(self) -> bool:
        return self.rgb.shape[2] == 1

    def to_rgb(self) -> np.ndarray:
        """Colour data as HxWx3 (grayscale repeated), the layout SR models expect."""
        return np.repeat(self.rgb, 3, axis=2) if self.is_grayscale else self.rgb


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with clipping and rounding (the input of the metrics)."""
    return quantize(rgb, np.uint8)


def _normalised_mode(pil: PILImage.Image) -> PILImage.Image:
    """Convert exotic modes to one of L, LA, RGB, RGBA or a 16-bit grayscale mode."""
    mode = pil.mode
    if mode in ("L", "LA", "RGB", "RGBA") or mode in _SIXTEEN_BIT_GRAY_MODES:
        return pil
    if mode == "P":
        return pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    if mode in ("PA", "RGBa"):
        return pil.convert("RGBA")
    if mode == "La":
        return pil.convert("LA")
    if mode == "1":
        return pil.convert("L")
    if mode in _CONVERT_TO_RGB_MODES:
        return pil.convert("RGB")
    raise ImageError(f"unsupported image mode {mode!r}")


# EXIF orientation -> the numpy form of ImageOps.exif_transpose
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
           8: lambda a: np.rot90(a, 1)}


def _png16(source, orientation: int) -> np.ndarray | None:
    """A 16-bit-per-channel PNG's pixels as uint16 HxWxC (pypng; Pillow keeps 8 of the 16 bits of colour PNGs),
    EXIF orientation applied; None without pypng."""
    try:
        import png  # type: ignore[import-untyped]
    except ImportError:
        return None
    data = source.getvalue() if hasattr(source, "getvalue") else Path(source).read_bytes()
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    if info["bitdepth"] != 16:
        return None
    pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda a: a)(pixels))


def _decode(source) -> Image:
    with PILImage.open(source) as opened:
        rawmode = str(getattr(opened.tile[0], "args", "") or "") if opened.tile else ""
        opened.load()  # force full decoding so truncated data fails here
        source_mode = opened.mode
        source_bits = 16 if ";16" in rawmode or source_mode in _SIXTEEN_BIT_GRAY_MODES else 8
        orientation = int(opened.getexif().get(0x0112, 1) or 1)
        is_png = opened.format == "PNG"
        pil = _normalised_mode(ImageOps.exif_transpose(opened))
    if pil.width == 0 or pil.height == 0:
        raise ImageError("image has zero size")
    pixels = np.asarray(pil)
    if source_bits == 16 and is_png and pil.mode not in _SIXTEEN_BIT_GRAY_MODES:
        wide = _png16(source, orientation)
        if wide is not None and wide.shape[:2] == pixels.shape[:2]:
            pixels = wide
    if pil.mode in _SIXTEEN_BIT_GRAY_MODES:
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ImageError(f"mode {pil.mode!r} values outside the 16-bit range")
        pixels = pixels.astype(np.uint16)
    decoded = decode_pixels(pixels, "pixels")  # one decoder for files, frames and arrays (agileir.io.pixels)
    return Image(rgb=decoded.colour, alpha=decoded.alpha, bit_depth=decoded.bit_depth, mode=source_mode,
                 source_bits=16 if decoded.bit_depth == 16 else source_bits)


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read PNG/JPEG/BMP/TIFF/WebP with EXIF orientation applied.

    Raises ImageError (naming the file) for missing, unreadable, corrupt or
    truncated files, unknown formats, unsupported modes and zero-size images.
    """
    path = Path(path)
    try:
        return _decode(path)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from error
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        PILImage.DecompressionBombError,
    ) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"cannot read image {path}: {reason}") from error


def decode_image(data: bytes, name: str) -> Image:
    """:func:`read_image` for bytes already fetched (e.g. from a pyarrow filesystem); `name` for messages."""
    import io

    try:
        return _decode(io.BytesIO(data))
    except ImageError as error:
        raise ImageError(f"{name}: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageError(f"cannot read image {name}: {reason}") from error


def _checked_arrays(
    path: Path, rgb: np.ndarray, alpha: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (1, 3) or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"{path}: expected a non-empty HxWx3 or HxWx1 array, got shape {rgb.shape}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ImageError(f"{path}: alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    # NaN/inf (e.g. an FP16 overflow in the model) would turn into arbitrary pixels.
    for name, values in (("image", rgb), ("alpha", alpha)):
        if values is not None and not np.all(np.isfinite(values)):
            raise ImageError(f"{path}: {name} contains NaN or infinite values")
    return rgb, alpha


def _write_png16(path: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> bool:
    """16-bit colour or gray+alpha PNG with pypng (Pillow cannot); False without pypng."""
    try:
        import png  # type: ignore[import-untyped]
    except ImportError:
        return False
    channels = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2)
    wide = quantize(channels, np.uint16)
    height, width, planes = wide.shape
    writer = png.Writer(width, height, greyscale=rgb.shape[2] == 1, alpha=alpha is not None, bitdepth=16)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            writer.write(f, wide.reshape(height, width * planes))
    return True


def _to_pil(rgb: np.ndarray, alpha: np.ndarray | None, bit_depth: int) -> tuple[PILImage.Image, int]:
    """Build the Pillow image; returns it with the bit depth actually used."""
    if bit_depth == 16 and (rgb.shape[2] == 3 or alpha is not None):
        warnings.warn(
            "16-bit RGB or 16-bit images with alpha need pypng (pip install pypng); writing 8-bit",
            stacklevel=3,
        )
        bit_depth = 8
    if bit_depth == 16:
        return PILImage.fromarray(quantize(rgb[..., 0], np.uint16)), 16

    channels = to_uint8(rgb)
    if alpha is not None:
        channels = np.concatenate([channels, to_uint8(alpha)[..., None]], axis=2)
    if channels.shape[2] == 1:
        channels = channels[..., 0]
    return PILImage.fromarray(np.ascontiguousarray(channels)), 8


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
) -> int:
    """Write a PNG atomically; returns the bit depth actually written (8 or 16).

    ``rgb`` is float [0, 1] HxWx3 or HxWx1 (clipped and rounded); ``alpha``
    (HxW) adds an alpha channel (RGBA / LA). The data go to a temporary file in
    the target directory which is then renamed onto ``path``, so a failure never
    leaves a partial or temporary file behind.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: write_image writes PNG only, use a .png suffix")
    if bit_depth not in (8, 16):
        raise ImageError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    rgb, alpha = _checked_arrays(path, rgb, alpha)
    if bit_depth == 16 and (rgb.shape[2] == 3 or alpha is not None) and _write_png16(path, rgb, alpha):
        return 16
    pil, written_depth = _to_pil(rgb, alpha, bit_depth)

    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return written_depth


def list_images(path: str | os.PathLike[str]) -> list[Path]:
    """A file -> [file]; a directory -> its image files sorted by name (not recursive)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImageError(f"{path}: no such file or directory")
    found = sorted(
        entry for entry in path.iterdir() if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise ImageError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found
