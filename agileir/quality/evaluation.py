"""Benchmark evaluation: PSNR/SSIM (Y, crop = scale) on a BasicSR-layout dataset, bicubic as a row."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..io.images import ImageError, list_images, read_image, to_gray, to_uint8
from .metrics import psnr_ssim_y
from .imresize import upscale_bicubic

UpscaleArray = Callable[[np.ndarray], np.ndarray]  # HxWx3 float [0,1] -> (H*s)x(W*s)x3


@dataclass
class EvalResult:
    dataset: str
    scale: int
    per_image: list[dict] = field(default_factory=list)

    def mean(self, key: str) -> float:
        return float(np.mean([r[key] for r in self.per_image]))

    def summary(self) -> dict:
        keys = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
        return {k: self.mean(k) for k in keys}

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "scale": self.scale, "images": self.per_image,
                "mean": self.summary()}


def score_as_written(sr: np.ndarray, hr: np.ndarray, scale: int, grayscale: bool) -> tuple[float, float]:
    """PSNR/SSIM (Y, crop = scale) of an SR output against its uint8 HR, the one scoring rule of every
    command (docs/reliability.md, "Grayscale"): what is scored is what `agileir-infer` writes. For a
    grayscale input that is the channel mean of the model's RGB output (`imageio.to_gray`), rounded to
    8 bits and repeated to RGB; for a colour input, the RGB output rounded to 8 bits."""
    sr = np.asarray(sr)
    if grayscale and sr.shape[2] == 3:
        sr = to_gray(sr)
    if sr.shape[2] == 1:
        sr = np.repeat(sr, 3, axis=2)
    return psnr_ssim_y(to_uint8(sr), hr, scale)


def benchmark_pairs(dataset: Path, scale: int) -> list[tuple[Path, Path]]:
    """(HR, LR) paths in BasicSR layout: HR/name.png with LR_bicubic/X{s}/name x{s}.png."""
    hr_dir, lr_dir = dataset / "HR", dataset / "LR_bicubic" / f"X{scale}"
    if not hr_dir.is_dir() or not lr_dir.is_dir():
        raise ImageError(f"{dataset} is not a BasicSR-layout dataset (needs HR/ and LR_bicubic/X{scale}/)")
    pairs = []
    for hr in list_images(hr_dir):
        lr = lr_dir / f"{hr.stem}x{scale}{hr.suffix}"
        if not lr.exists():
            raise ImageError(f"missing LR image {lr} for {hr.name}")
        pairs.append((hr, lr))
    return pairs


def evaluate(upscale: UpscaleArray, dataset: str | Path, scale: int,
             progress: Callable[[int], None] | None = None) -> EvalResult:
    dataset = Path(dataset)
    result = EvalResult(dataset.name, scale)
    for hr_path, lr_path in benchmark_pairs(dataset, scale):
        hr = to_uint8(read_image(hr_path).to_rgb())
        lr = read_image(lr_path)
        lr_img = lr.to_rgb()
        psnr, ssim = score_as_written(upscale(lr_img), hr, scale, lr.is_grayscale)
        bic = upscale_bicubic(to_uint8(lr_img), scale)
        bpsnr, bssim = psnr_ssim_y(bic, hr, scale)
        result.per_image.append({"image": hr_path.stem, "psnr": psnr, "ssim": ssim,
                                 "bicubic_psnr": bpsnr, "bicubic_ssim": bssim})
        if progress:
            progress(1)
    return result


def format_table(result: EvalResult) -> str:
    lines = [f"{result.dataset} x{result.scale}",
             f"{'image':<14}{'PSNR':>9}{'SSIM':>9}{'bic PSNR':>10}{'bic SSIM':>10}"]
    for r in result.per_image:
        lines.append(f"{r['image']:<14}{r['psnr']:>9.3f}{r['ssim']:>9.4f}"
                     f"{r['bicubic_psnr']:>10.3f}{r['bicubic_ssim']:>10.4f}")
    m = result.summary()
    lines.append(f"{'mean':<14}{m['psnr']:>9.3f}{m['ssim']:>9.4f}{m['bicubic_psnr']:>10.3f}{m['bicubic_ssim']:>10.4f}")
    return "\n".join(lines)
