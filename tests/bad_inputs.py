"""Generators of the bad-input corpus (tests/test_bad_inputs.py): each writes one file and returns its path.

Test-only: nothing here ships in the package."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from agileir.models import build_model, save_safetensors


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(*roots: Path) -> dict[Path, str]:
    """Hash of every file below `roots` (inputs must be unchanged after any command)."""
    found = {}
    for root in roots:
        root = Path(root)
        for p in ([root] if root.is_file() else sorted(root.rglob("*"))):
            if p.is_file():
                found[p] = sha(p)
    return found


def temp_files(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob(".*") if ".agileir-" in p.name or p.name.endswith(".tmp")]


# -- images ------------------------------------------------------------------------------------------
def good_png(path: Path, h: int = 12, w: int = 14, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 255, (h, w, channels), np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(path)
    return path


def corrupt_png(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    return path


def truncated_png(path: Path) -> Path:
    full = good_png(path.with_name("_full_" + path.name), 40, 40).read_bytes()
    path.with_name("_full_" + path.name).unlink()
    path.write_bytes(full[: len(full) // 2])
    return path


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def png48(path: Path, h: int = 6, w: int = 7) -> Path:
    """48-bit RGB PNG written by hand (Pillow cannot write one)."""
    rows = np.random.default_rng(1).integers(0, 65535, (h, w * 3)).astype(">u2")
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def palette_png(path: Path) -> Path:
    Image.open(good_png(path, 10, 9)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    return path


def exif_rotated_jpeg(path: Path, h: int = 8, w: int = 16) -> Path:
    """Stored w x h with orientation 6 (rotate 90): displayed h x w."""
    im = Image.fromarray(np.random.default_rng(2).integers(0, 255, (h, w, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, exif=exif.tobytes())
    return path


def one_pixel(path: Path) -> Path:
    Image.fromarray(np.full((1, 1, 3), 77, np.uint8)).save(path)
    return path


# -- models ------------------------------------------------------------------------------------------
def checkpoint(path: Path, config) -> Path:
    torch.manual_seed(0)
    save_safetensors(build_model(config), path)
    return path


def nan_checkpoint(path: Path, config) -> Path:
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "conv_first" in n or p.ndim == 4).fill_(float("nan"))
    save_safetensors(model, path)
    return path


class _Boom:
    """Unpickling this runs code: it must be refused, never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_with_code(path: Path, marker: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"params": {"w": torch.zeros(1)}, "x": _Boom(marker)}, buf, pickle_protocol=2)
    path.write_bytes(buf.getvalue())
    return path


def raw_pickle_with_code(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Boom(marker)))
    return path


def truncated(path: Path, source: Path) -> Path:
    data = Path(source).read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def random_bytes(path: Path, n: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(3).integers(0, 256, n, np.uint8).tobytes())
    return path


def forged_onnx(path: Path, scale: int = 4) -> Path:
    """Metadata claims x`scale`, the graph is Identity (does not upscale)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["lr"], ["sr"])], "forged",
                              [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [None, 3, None, None])],
                              [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [None, 3, None, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"scale": str(scale), "form": "standard", "window": "1"}.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(path))
    return path


def fake_engine(path: Path) -> Path:
    """An engine file with a valid engine.json: needs TensorRT, which the CI machine lacks (exit 3)."""
    import json

    path.write_bytes(b"not an engine")
    path.with_suffix(".json").write_text(json.dumps({
        "format": "agileir-engine/1", "scale": 2, "precision": "fp32", "form": "standard",
        "tensorrt_version": "10.0", "profile": {"min": [1, 3, 1, 1], "opt": [1, 3, 32, 32], "max": [1, 3, 64, 64]}}))
    return path


def dataset(root: Path, scale: int, names=("a", "b"), lr_hw=(12, 14)) -> Path:
    """A BasicSR-layout dataset of random images."""
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    for i, n in enumerate(names):
        good_png(root / "HR" / f"{n}.png", lr_hw[0] * scale, lr_hw[1] * scale, seed=10 + i)
        good_png(root / "LR_bicubic" / f"X{scale}" / f"{n}x{scale}.png", *lr_hw, seed=20 + i)
    return root
