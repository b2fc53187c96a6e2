"""Parity of a deployed artifact (checkpoint, ONNX variant, TensorRT engine) with the PyTorch FP32 reference
on a BasicSR-layout dataset, with a pass/fail verdict per precision.

Criteria (data, not code paths; override per call):

| precision | metric                                                     | threshold |
|-----------|------------------------------------------------------------|-----------|
| fp32      | min over images of PSNR(artifact, reference), RGB 0..1     | >= 60 dB  |
| fp16      | same                                                       | >= 55 dB  |
| int8      | mean over images of PSNR_Y(artifact, HR) - PSNR_Y(ref, HR) | >= -0.10 dB |

The reference is the checkpoint recorded in the artifact (`source_checkpoint`: file name + sha256, looked
up in agileir/weights/ and beside the artifact) run in PyTorch, or the one passed explicitly. Without PyTorch
(a deploy install) it is an FP32 ONNX file of the same export run in ONNX Runtime: the one passed, else
`model.onnx` (or `model.plugin.onnx`) beside the artifact, never the artifact itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import artifact_kind, artifact_metadata, artifact_precision, read_onnx


@dataclass(frozen=True)
class Criterion:
    metric: str  # a key of the per-image rows
    aggregate: str  # "min" | "mean"
    threshold: float


DEFAULT_CRITERIA = {
    "fp32": Criterion("psnr_vs_reference", "min", 60.0),
    "fp16": Criterion("psnr_vs_reference", "min", 55.0),
    "int8": Criterion("delta_psnr", "mean", -0.10),
}


@dataclass
class ValidationReport:
    artifact: str
    precision: str
    criterion: Criterion
    images: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        values = [r[self.criterion.metric] for r in self.images]
        if not values:
            return math.nan
        return float(min(values) if self.criterion.aggregate == "min" else np.mean(values))

    @property
    def passed(self) -> bool:
        return bool(self.images) and not math.isnan(self.value) and self.value >= self.criterion.threshold

    def to_dict(self) -> dict:
        keys = ("psnr_vs_reference", "max_abs_err", "psnr", "ssim", "ref_psnr", "ref_ssim", "delta_psnr")
        mean = {k: float(np.mean([r[k] for r in self.images])) for k in keys} if self.images else {}
        return {"artifact": self.artifact, "precision": self.precision, **self.info,
                "criterion": {"metric": self.criterion.metric, "aggregate": self.criterion.aggregate,
                              "threshold": self.criterion.threshold, "value": _finite(self.value)},
                "passed": self.passed, "images": [{k: _finite(v) for k, v in r.items()} for r in self.images],
                "mean": {k: _finite(v) for k, v in mean.items()}}


def _finite(v):
    """JSON has no inf: an identical output is reported as PSNR 999 dB ("inf" in the table)."""
    return 999.0 if isinstance(v, float) and math.isinf(v) else v


def image_metrics(out: np.ndarray, ref: np.ndarray, hr: np.ndarray, scale: int) -> dict:
    """The metrics of one image: artifact vs reference (float RGB 0..1, all pixels) and each vs HR (uint8, Y,
    crop = scale).

    Polygraphy's Comparator is not used here: it compares raw output tensors element-wise per runner call,
    while this check needs image metrics after the full post-processing (clip, uint8 rounding, Y channel,
    border crop, against HR as well as the reference) and inputs tiled above the runner when they exceed an
    engine profile."""
    from ..io.images import to_uint8
    from ..quality.metrics import psnr_ssim_y
    from .parity import float_parity

    parity = float_parity(out, ref)
    if not parity["finite"]:
        raise ValueError("the artifact's output has NaN or Inf values")
    p, s = psnr_ssim_y(to_uint8(out), hr, scale)
    rp, rs = psnr_ssim_y(to_uint8(ref), hr, scale)
    return {"psnr_vs_reference": parity["psnr_db"], "max_abs_err": parity["max_abs_err"],
            "psnr": p, "ssim": s, "ref_psnr": rp, "ref_ssim": rs, "delta_psnr": p - rp}


FP32_ONNX_REFERENCES = ("model.onnx", "model.plugin.onnx")  # what agileir-export writes, in order of preference


@dataclass(frozen=True)
class Reference:
    """What an artifact is compared with: a checkpoint (run in PyTorch) or an FP32 .onnx (run in ONNX Runtime)."""

    path: Path
    recorded: dict | None  # the artifact's source_checkpoint record

    @property
    def kind(self) -> str:
        return artifact_kind(self.path)

    def describe(self) -> str:
        engine = "PyTorch" if self.kind == "checkpoint" else "ONNX Runtime"
        return f"the {engine} FP32 reference {self.path.name}"


def torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def find_reference(artifact: Path, reference: str | Path | None = None) -> Reference:
    """The reference of `artifact`: `reference` when given (a checkpoint or an FP32 .onnx), the artifact itself
    when it is a checkpoint, the checkpoint it records when PyTorch is installed, else an FP32 ONNX beside it."""
    kind = artifact_kind(artifact)
    recorded = artifact_metadata(artifact).get("source_checkpoint") if kind != "checkpoint" else None
    if reference is not None:
        return Reference(_explicit_reference(Path(reference)), recorded)
    if kind == "checkpoint":
        return Reference(artifact, None)
    if torch_available():
        return Reference(_recorded_checkpoint(artifact, recorded), recorded)
    for name in FP32_ONNX_REFERENCES:
        candidate = artifact.parent / name
        if candidate.is_file() and candidate.resolve() != artifact.resolve() and _is_fp32_onnx(candidate):
            return Reference(candidate, recorded)
    raise ModuleNotFoundError(f"validating {artifact.name} needs PyTorch for its checkpoint reference, or an FP32 "
                              f"ONNX reference (--reference model.onnx)", name="torch")


def _explicit_reference(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"reference not found: {path}")
    kind = artifact_kind(path)
    if kind == "engine" or (kind == "onnx" and not _is_fp32_onnx(path)):
        raise ValueError(f"--reference {path.name}: a reference is a checkpoint or an FP32 .onnx file")
    return path


def _is_fp32_onnx(path: Path) -> bool:
    from .artifacts import onnx_precision

    return onnx_precision(read_onnx(path)) == "fp32"


def _recorded_checkpoint(artifact: Path, recorded: dict | None) -> Path:
    from ..models.load import WEIGHTS_DIR, file_sha256

    if not isinstance(recorded, dict) or "file" not in recorded:
        raise ValueError(f"{artifact.name} records no source checkpoint: pass --reference CKPT")
    for folder in (WEIGHTS_DIR, artifact.parent, artifact.parent.parent, Path.cwd()):
        candidate = folder / recorded["file"]
        if candidate.is_file() and file_sha256(candidate) == recorded.get("sha256"):
            return candidate
    raise ValueError(f"reference checkpoint {recorded['file']} (sha256 {str(recorded.get('sha256'))[:12]}...) not "
                     "found in agileir/weights/ or beside the artifact: pass --reference CKPT")


def _reference_record(ref: Reference) -> dict:
    from ..models.load import file_sha256

    sha = file_sha256(ref.path)
    if ref.kind == "checkpoint":
        matches = None if ref.recorded is None else ref.recorded.get("sha256") == sha
    else:  # an ONNX reference matches when both files were exported from the same checkpoint
        own = artifact_metadata(ref.path).get("source_checkpoint")
        matches = None if ref.recorded is None or not isinstance(own, dict) else \
            own.get("sha256") == ref.recorded.get("sha256")
    return {"file": ref.path.name, "kind": ref.kind, "runs_in": "pytorch" if ref.kind == "checkpoint" else
            "onnxruntime", "sha256": sha, "matches_artifact": matches}


def validate_artifact(artifact: str | Path, dataset: str | Path, scale: int, reference: str | Path | None = None,
                      backend: str | None = None, criterion: Criterion | None = None,
                      progress: Callable[[dict], None] | None = None, device: str = "auto") -> ValidationReport:
    """Run the artifact and the reference on every LR image of `dataset` and judge the precision's criterion.
    `device`: where a checkpoint (the artifact or the reference) runs in PyTorch (resolve_device)."""
    from ..quality.evaluation import benchmark_pairs
    from ..io.images import read_image, to_uint8
    from ..upscale.upscaler import Upscaler
    from ..models.load import file_sha256
    from . import load_runner

    artifact = Path(artifact)
    if not artifact.is_file():
        raise FileNotFoundError(f"artifact not found: {artifact}")
    from ..export.folder import check_listed_artifact

    check_listed_artifact(artifact)  # the export.json beside it agrees with the graph (scale, form, precision, opset)
    precision = artifact_precision(artifact)
    if criterion is None:
        if precision not in DEFAULT_CRITERIA:
            raise ValueError(f"no validation criterion for precision {precision!r}")
        criterion = DEFAULT_CRITERIA[precision]
    found = find_reference(artifact, reference)
    if found.kind == "onnx":
        check_listed_artifact(found.path)
    pairs = benchmark_pairs(Path(dataset), scale)
    runner = load_runner(artifact, backend=backend, device=device)
    ref = load_runner(found.path, device=device, backend="onnxruntime" if found.kind == "onnx" else "auto")
    if runner.scale != scale or ref.scale != scale:
        raise ValueError(f"--scale {scale} does not match the artifact (x{runner.scale}) and reference (x{ref.scale})")
    report = ValidationReport(str(artifact), precision, criterion, info={
        "artifact_sha256": file_sha256(artifact), "backend": runner.backend, "runner": runner.description,
        "reference": _reference_record(found), "reference_description": found.describe(),
        "dataset": str(dataset), "scale": scale})
    upscaler, ref_upscaler = Upscaler(runner), Upscaler(ref)
    try:
        for hr_path, lr_path in pairs:
            lr = read_image(lr_path).to_rgb()
            hr = to_uint8(read_image(hr_path).to_rgb())
            row = {"image": hr_path.stem, "lr_hw": list(lr.shape[:2])}
            # both tiled alike when the image is over the memory budget, so parity compares like with like
            plan = ref_upscaler.plan(*lr.shape[:2])
            out = upscaler.upscale_frames([lr], plan)[0]
            row |= image_metrics(out, ref_upscaler.upscale_frames([lr], plan)[0], hr, scale)
            report.images.append(row)
            if progress:
                progress(row)
    finally:
        runner.deactivate()
        ref.deactivate()
    return report


def format_report(report: ValidationReport) -> str:
    c = report.criterion
    lines = [f"{'image':<14}{'vs ref dB':>10}{'max err':>10}{'PSNR':>9}{'SSIM':>8}{'ref PSNR':>10}{'dPSNR':>8}"]
    for r in report.images:
        lines.append(f"{r['image']:<14}{r['psnr_vs_reference']:>10.2f}{r['max_abs_err']:>10.2e}{r['psnr']:>9.3f}"
                     f"{r['ssim']:>8.4f}{r['ref_psnr']:>10.3f}{r['delta_psnr']:>+8.3f}")
    verdict = "PASS" if report.passed else "FAIL"
    lines.append(f"{verdict}: {report.precision} criterion {c.aggregate} {c.metric} = {report.value:.3f} "
                 f"(threshold >= {c.threshold:g}) over {len(report.images)} images")
    return "\n".join(lines)
