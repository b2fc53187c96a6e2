"""Writing the FP16 / INT8 variants of exported forms beside the FP32 files (what `agileir-export --fp16/--int8`
does after the FP32 export), with their calibration record and the ONNX Runtime check of each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class VariantOptions:
    """Which reduced-precision variants to write beside the FP32 files."""
    fp16: bool = False
    int8: bool = False
    calibrator: str = "entropy"
    calib_dir: Path | None = None  # None: the bundled calibration set
    calib_json: Path | None = None  # reuse these ranges instead of calibrating
    fp16_block: tuple[str, ...] | None = None  # None: agileir.calibration.fp16.DEFAULT_BLOCK_OPS
    calibration: Any = None  # a loaded Calibration (from calib_json), checked before exporting
    images: list | None = None  # loaded calibration images

    @property
    def any(self) -> bool:
        return self.fp16 or self.int8


@dataclass
class VariantTarget:
    """Where the variant files go and how the FP32 export that they sit beside was made."""
    out_dir: Path
    base: dict  # export.json's keys (less "forms"), stamped into every file's metadata
    sample: Any  # HxWx3 float32 image the ORT check runs on
    validate: bool = True
    echo: Callable[[str], None] = print
    static_shape: tuple | None = None  # the FP32 export's; calibration always runs on a dynamic-shape export
    opset: int = 17
    progress: Any = None  # agileir.io.progress.Progress; None: lines to `echo`
    references: dict | None = None  # form -> the FP32 graph's ONNX Runtime output on `sample`, where known


def write_variants(loaded, protos: dict, forms: list[str], options: VariantOptions, target: VariantTarget) -> dict:
    """FP16 and/or INT8 files of `forms` in `target.out_dir`; returns export.json's "variants" entry."""
    import numpy as np

    from ..export.onnx_export import ExportOptions, annotate, export_onnx, node_counts, save_checked
    from ..io.progress import as_progress
    from . import variants as V
    from .calibrators import progress_steps
    from .dataset import load_images
    from .fp16 import DEFAULT_BLOCK_OPS
    from .record import Calibration

    out_dir, base, sample = target.out_dir, target.base, target.sample
    progress = as_progress(target.progress, target.echo)
    echo = progress.note
    batch = np.ascontiguousarray(sample.transpose(2, 0, 1)[None], dtype=np.float32)
    references: dict = dict(target.references or {})

    def reference(form):
        if form not in references:
            references[form] = V.batch_runner(protos[form])(batch)
        return references[form]

    built: dict[str, dict] = {}
    result: dict[str, Any] = {}
    if options.fp16:
        block = tuple(options.fp16_block) if options.fp16_block is not None else DEFAULT_BLOCK_OPS
        echo(f"[fp16] converting with onnxconverter-common, FP32 kept for: {', '.join(block) or 'nothing'}")
        built["fp16"] = {}
        for form in forms:
            with progress.stage("fp16 convert", f"{form} fp16", what="FP16 conversion"):
                built["fp16"][form] = V.to_fp16(protos[form], block)
        result["fp16"] = {"tool": "onnxconverter-common float16", "fp32_ops": list(block), "io": "float32"}
    if options.int8:
        if options.calib_json:
            calibration = options.calibration or Calibration.load(options.calib_json)
            calibration.check_checkpoint(loaded.sha256)
            echo(f"[int8] ranges from {options.calib_json} ({calibration.calibrator}, not recalibrated)")
        else:
            images = options.images or load_images(options.calib_dir)
            graph = protos["standard"]
            if target.static_shape:  # calibration images have their own sizes: calibrate a dynamic-shape export
                graph = export_onnx(loaded.model, "standard", ExportOptions(opset=target.opset))
            steps = progress_steps(options.calibrator, len(images), len(V.readers_of(graph)))
            with progress.stage("calibrate", "int8", total=steps,
                                what=f"calibrating ({options.calibrator}, {len(images)} images)") as step:
                calibration = V.calibrate(graph, images, options.calibrator,
                                          {"source_checkpoint": base["source_checkpoint"]}, step.advance)
        calibration.save(out_dir / V.CALIBRATION_FILE)
        echo(f"[int8] wrote {out_dir / V.CALIBRATION_FILE} ({len(calibration.ranges)} activation ranges)")
        with progress.stage("quantize", "int8", what="writing Q/DQ nodes"):
            built["int8"] = {f: q for f, q in V.int8_forms(protos, calibration).items() if f in forms}
        result["int8"] = {"tool": "onnxruntime.quantization QDQ", "calibrator": calibration.calibrator,
                          "calibration": V.CALIBRATION_FILE, "calibration_images": len(calibration.images)}
    for precision, graphs in built.items():
        for form, proto in graphs.items():
            name = V.FILES[(precision, form)]
            entry: dict[str, Any] = {"file": name, "node_counts": node_counts(proto)}
            if precision == "int8":
                entry["quantization"] = V.describe_int8(proto)
            if target.validate:
                with progress.stage("validate", f"{form} {precision}",
                                    what="ONNX Runtime vs the FP32 output on the sample image") as step:
                    check = V.check_variant(proto, reference(form), sample, precision)
                    step.note(f"PSNR {check['psnr_db']:.1f} dB -> {'ok' if check['passed'] else 'FAILED'}")
                entry["validation"] = check
            annotate(proto, base | {"form": form, "precision": precision, **entry,
                                    **({"calibrator": result["int8"]["calibrator"]} if precision == "int8" else {})})
            path = out_dir / name
            with progress.stage("write", f"{form} {precision}", what=f"checking and writing {name}"):
                save_checked(proto, path)
            entry["bytes"] = path.stat().st_size
            result[precision][form] = entry
            echo(f"[{form} {precision}] wrote {path} ({entry['bytes'] / 1e6:.1f} MB, "
                 f"{entry['node_counts']['total']} nodes)")
    return result
