"""Calibration images: the bundled default set (made from training images only) or a folder of LR images.

The bundled set is 16 LR crops of 48x48: seeded 192x192 crops of BSD100_HR training images, degraded
with the MATLAB-exact bicubic x4 used for the benchmarks. Benchmark images (Set5, Set14, ...) are never
used, so calibration does not see the evaluation data. Rebuild it with
`python -m agileir.calibration.dataset ../shared/data/train/BSD100_HR`.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST = "manifest.json"
COUNT, LR_SIZE, SCALE, SEED = 16, 48, 4, 0


@dataclass(frozen=True)
class CalibrationImage:
    name: str
    sha256: str
    rgb: np.ndarray  # HxWx3 float32 [0, 1]

    def record(self) -> dict:
        return {"file": self.name, "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_images(directory: str | Path | None = None) -> list[CalibrationImage]:
    """The images of `directory` (default: the bundled set, checked against its manifest)."""
    from ..io.images import list_images, read_image

    folder = Path(directory) if directory is not None else DATA_DIR
    manifest = folder / MANIFEST
    if manifest.is_file():
        entries = json.loads(manifest.read_text())["images"]
        paths = [folder / e["file"] for e in entries]
        for entry, path in zip(entries, paths):
            if not path.is_file() or sha256_of(path) != entry["sha256"]:
                raise ValueError(f"calibration image {path} is missing or differs from {manifest.name}")
    else:
        paths = list_images(folder)
    return [CalibrationImage(p.name, sha256_of(p), read_image(p).to_rgb().astype(np.float32)) for p in paths]


def build_default_set(source_dir: str | Path, out_dir: str | Path = DATA_DIR, count: int = COUNT,
                      lr_size: int = LR_SIZE, scale: int = SCALE, seed: int = SEED) -> dict:
    """Write calib_000.png ... and manifest.json; deterministic for a given source folder and seed."""
    from PIL import Image

    from ..io.images import list_images, read_image, to_uint8
    from ..quality.imresize import bicubic_degrade

    source, out = Path(source_dir), Path(out_dir)
    files = list_images(source)
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(files), size=min(count, len(files)), replace=False).tolist())
    hr_size = lr_size * scale
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, index in enumerate(picks):
        hr = to_uint8(read_image(files[index]).to_rgb())
        h, w = hr.shape[:2]
        if h < hr_size or w < hr_size:
            raise ValueError(f"{files[index].name} is smaller than the {hr_size}x{hr_size} crop")
        top, left = int(rng.integers(0, h - hr_size + 1)), int(rng.integers(0, w - hr_size + 1))
        lr = bicubic_degrade(hr[top:top + hr_size, left:left + hr_size], scale)
        name = f"calib_{i:03d}.png"
        Image.fromarray(lr).save(out / name, optimize=True)
        entries.append({"file": name, "source": files[index].name,
                        "crop_box_hr": [left, top, left + hr_size, top + hr_size],  # x0, y0, x1, y1
                        "scale": scale, "lr_size": [lr_size, lr_size], "sha256": sha256_of(out / name)})
    manifest = {"description": "AgileIR INT8 calibration set: seeded HR crops of training images, "
                               "MATLAB-bicubic downscaled; no benchmark image is used",
                "source_dir": source.name, "seed": seed, "images": entries}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m agileir.calibration.dataset TRAIN_HR_DIR")
    built = build_default_set(sys.argv[1])
    total = sum((DATA_DIR / e["file"]).stat().st_size for e in built["images"])
    print(f"wrote {len(built['images'])} images ({total / 1024:.0f} KiB) and {MANIFEST} to {DATA_DIR}")
