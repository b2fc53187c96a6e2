"""The export job: checkpoint -> fused model -> one validated ONNX file per form (+ FP16/INT8 variants) ->
export.json -> the engine step. Returns what it wrote; the CLI and the Python API print or use it.

    result = export_checkpoint(ExportRequest(checkpoint="model.pth", out_dir=Path("out"), forms=("standard",)))
    result.written      # every file, in the order written
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..export.forms import onnx_name
from ..io.progress import Progress
from .engines import EngineStep, EngineTarget, engine_step

# The export gate is PSNR, as in `agileir validate`. Max abs error is reported, not gated: on the synthetic
# sample's flat regions float32 rounding reaches ~1e-3 for the trained x4 model (ONNX Runtime graph
# optimisations on or off), while on natural images (Set5, tested) it stays near 1e-6.
FP32_PSNR_DB = 60.0


@dataclass
class ExportRequest:
    """What to export: `checkpoint` None is the bundled default; `out_dir` None is export_<checkpoint stem>."""
    checkpoint: str | None = None
    out_dir: Path | None = None
    forms: tuple[str, ...] = ("standard", "plugin")
    onnx: Any = None  # agileir.export.onnx_export.ExportOptions (opset, static_shape, fold); None: its defaults
    validate: bool = True
    variants: Any = None  # agileir.calibration.writer.VariantOptions; None: FP32 only
    engines: EngineTarget | None = None  # None: no engine step
    preset: str | None = None
    upstream_compat: bool = False

    def __post_init__(self) -> None:
        from ..export.forms import FORMS

        if isinstance(self.forms, str) or not self.forms or any(f not in FORMS for f in self.forms):
            raise ValueError(f"forms must be a tuple naming at least one of {', '.join(FORMS)}, got {self.forms!r}")

    def output_dir(self) -> Path:
        from ..models.load import default_checkpoint

        stem = Path(self.checkpoint).stem if self.checkpoint else default_checkpoint().stem
        return Path(self.out_dir) if self.out_dir else Path(f"export_{stem}")


@dataclass
class ExportResult:
    out_dir: Path
    info: dict  # export.json's content
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # forms / variants whose ONNX Runtime check failed
    engines: EngineStep | None = None

    @property
    def onnx_files(self) -> list[Path]:
        return [p for p in self.written if p.suffix == ".onnx"]


def export_outputs(out: Path, forms: tuple[str, ...], fp16: bool, int8: bool) -> list[Path]:
    """Every file an export into `out` may write (engines and their sidecars included)."""
    names = [onnx_name(f) for f in forms] + ["export.json"]
    names += [onnx_name(f, "fp16") for f in forms if fp16] + [onnx_name(f, "int8") for f in forms if int8]
    names += ["calibration.json"] if int8 else []
    names += [n[: -len(".onnx")] + ".plan" for n in list(names) if n.endswith(".onnx")]
    names += [n[: -len(".onnx")] + ".json" for n in list(names) if n.endswith(".onnx")]
    return [out / n for n in names] + [out / "timing.cache"]


def check_request(request: ExportRequest) -> None:
    """Before any work: no output may replace the checkpoint or a calibration input."""
    from ..io.outputs import check_outputs, input_files
    from ..models.load import default_checkpoint

    v = request.variants
    fp16, int8 = bool(v and v.fp16), bool(v and v.int8)
    model_path = Path(request.checkpoint) if request.checkpoint else default_checkpoint()
    calib = (v.calib_dir, v.calib_json) if v is not None else (None, None)
    check_outputs([(p, "agileir-export") for p in export_outputs(request.output_dir(), request.forms, fp16, int8)],
                  [model_path, *input_files(*calib)])
    if request.onnx is not None:  # a form the --compat target's parser cannot import fails here, before any work
        from ..export.compat import refusal

        why = refusal(request.forms, request.onnx.compat, request.onnx.opset)
        if why:
            raise ValueError(why)


def output_kind(path: Path) -> str:
    """The output gate's kind of each file an export writes."""
    if path.suffix == ".plan":
        return "engine"
    if path.suffix == ".json" and path.name not in ("export.json", "calibration.json"):
        return "engine description"
    return "export"


def claim_export(request: ExportRequest, overwrite: bool = False):
    """The export's OutputGate (agileir.io.gate): the checkpoint and calibration inputs its inputs, every file the
    export may write claimed now, before the model loads (timing.cache, a cache updated in place, is not)."""
    from ..io.gate import OutputGate
    from ..io.outputs import input_files
    from ..models.load import default_checkpoint

    v = request.variants
    fp16, int8 = bool(v and v.fp16), bool(v and v.int8)
    calib = (v.calib_dir, v.calib_json) if v is not None else (None, None)
    gate = OutputGate([Path(request.checkpoint) if request.checkpoint else default_checkpoint(),
                       *input_files(*calib)], overwrite)
    for path in export_outputs(request.output_dir(), request.forms, fp16, int8):
        if path.name != "timing.cache":
            gate.claim(path, output_kind(path), "agileir-export")
    return gate


def export_checkpoint(request: ExportRequest, gate, echo: Callable[[str], None] | None = print,
                      progress: Progress | None = None) -> ExportResult:
    """Run the whole export (see the module docstring) through `gate` (claim_export): each file's ledger line is
    durable before the file is published, so an interrupted export leaves files a rerun replaces, and a folder
    the export created is removed when nothing was written into it. ONNX Runtime validation failures are listed
    in `result.failed` (and then no engine is built); bad input raises before anything is written. Every stage
    is reported through `progress` (agileir.io.progress: lines, bars, the 'agileir' logger, a callback); without
    one, its lines go to `echo`."""
    from ..io.progress import as_progress
    from ..runtime.pytorch import load_checked_model

    progress = as_progress(progress, echo)
    echo = progress.note

    check_request(request)
    loaded = load_checked_model(request.checkpoint, request.preset, request.upstream_compat)
    if request.variants is not None and request.variants.int8:
        _load_calibration_inputs(request.variants, loaded)  # bad calibration input fails before minutes of export
    out = request.output_dir()
    result = ExportResult(out, {})
    try:
        gate.make_folder(out)
        with gate.publishing():
            write_forms(loaded, request, result, progress)
            result.failed = _failed_checks(result.info)
            if request.engines is not None and not result.failed:
                result.engines = engine_step(result.onnx_files, request.engines, echo, progress)
                result.written += [p for e in result.engines.built for p in (e, e.with_suffix(".json"))]
    finally:
        gate.remove_unused_folders()
    for path in result.written:  # a no-op for each file recorded before its rename
        gate.record(path, output_kind(path))
    return result


def _load_calibration_inputs(variants, loaded) -> None:
    from ..calibration.dataset import load_images
    from ..calibration.record import Calibration

    if variants.calib_json:
        variants.calibration = Calibration.load(variants.calib_json)
        variants.calibration.check_checkpoint(loaded.sha256)
    else:
        variants.images = load_images(variants.calib_dir)


def _failed_checks(info: dict) -> list[str]:
    failed = [f for f, e in info["forms"].items() if not e.get("validation", {}).get("passed", True)]
    failed += [f"{f} {p}" for p, entries in info.get("variants", {}).items() for f, e in entries.items()
               if isinstance(e, dict) and not e.get("validation", {}).get("passed", True)]
    failed += [f"{name} (TensorRT parser check)" for name in info.get("compat", {}).get("unparsed", {})]
    return failed


def export_info(loaded, options) -> dict:
    """export.json's header: toolkit, source checkpoint, config, I/O contract, the plugin node's identity."""
    from .. import __version__
    from ..export.compat import target_summary
    from ..models.config import preset_name
    from ..models.gswa_node import identity

    config, shape = loaded.config, options.static_shape
    return {
        "toolkit_version": __version__,
        "source_checkpoint": {"file": loaded.path.name, "sha256": loaded.sha256},
        "config": config.to_dict(), "preset": preset_name(config),
        "scale": config.scale, "window": config.window_size, "opset": options.opset, "fold": options.fold,
        "compat": target_summary(options.compat),
        "input": {"name": "lr", "layout": "NCHW", "range": "RGB 0..1",
                  "shape": list(shape) if shape else ["batch", 3, "height", "width"]},
        "output": {"name": "sr", "shape": ["batch", 3, f"height*{config.scale}", f"width*{config.scale}"]},
        "plugin_node": identity(),
        "forms": {},
    }


def write_forms(loaded, request: ExportRequest, result: ExportResult, progress: Progress) -> None:
    """Each form (validated, annotated, checked, written), the variants, then export.json, into result."""
    from ..export.compat import check_exported
    from ..export.onnx_export import ExportOptions, export_onnx
    from ..io.atomic import write_json
    from ..io.samples import sample_image

    options = request.onnx or ExportOptions()
    info = result.info = export_info(loaded, options)
    shape = options.static_shape
    sample = sample_image() if not shape else sample_image(shape[3], shape[2])
    result.out_dir.mkdir(parents=True, exist_ok=True)
    protos, references = {}, {}
    variants = request.variants
    with progress.stage("export", total=_stage_count(request), what=f"exporting {', '.join(request.forms)}",
                        counts_stages=True):
        for form in request.forms:
            protos[form] = _write_form(loaded, form, request, sample, info, result, progress, references)
        if variants is not None and variants.any:
            if variants.int8 and "standard" not in protos:  # calibration runs on the standard form
                progress.note("[standard] the standard form for INT8 calibration (not written)")
                protos["standard"] = export_onnx(loaded.model, "standard", options, progress)
            _write_variants(loaded, protos, request, sample, result, progress, references)
    if options.compat != "latest":  # every file written is checked against the target's parser table
        info["compat"]["unparsed"] = check_exported(result.onnx_files, options.compat, progress.note)
    opsets = {e["opset"] for e in info["forms"].values()}
    if len(opsets) == 1:  # one opset for every form (an attention-only export: 23, whatever --opset said)
        info["opset"] = opsets.pop()
    write_json(result.out_dir / "export.json", info)
    result.written.append(result.out_dir / "export.json")


def _stage_count(request: ExportRequest) -> int:
    """How many progress stages the export's forms and variants take (the overall bar's total)."""
    per_form = (4 if (request.onnx is None or request.onnx.slim) else 3) + bool(request.validate) + 1
    total = sum(per_form + (f == "attention") for f in request.forms)
    v = request.variants
    if v is not None and v.fp16:  # convert, validate, write per form
        total += len(request.forms) * (2 + bool(request.validate))
    if v is not None and v.int8:  # calibrate (unless ranges are given) and quantize once; validate, write per form
        total += 1 + (not v.calib_json) + len(request.forms) * (1 + bool(request.validate))
        total += per_form - 2 if "standard" not in request.forms else 0  # traced, not validated or written
    return total


def _write_form(loaded, form: str, request: ExportRequest, sample, info: dict, result: ExportResult,
                progress: Progress, references: dict):
    from ..export.folder import graph_opset
    from ..export.onnx_export import ExportOptions, annotate, export_onnx, node_counts, save_checked
    from ..io.gate import file_sha256

    config, options, validate = loaded.config, request.onnx or ExportOptions(), request.validate
    t0 = time.time()
    proto = export_onnx(loaded.model, form, options, progress)
    traced = proto.SerializeToString()
    entry: dict[str, Any] = {"file": onnx_name(form), "opset": graph_opset(proto),  # the graph's, per form
                             "node_counts": node_counts(proto), "export_s": round(time.time() - t0, 1)}
    if validate:
        annotate(proto, {"scale": config.scale, "window": config.window_size, "form": form})
        with progress.stage("validate", form, what="ONNX Runtime vs PyTorch on the sample image") as step:
            entry["validation"] = check = _fp32_parity(proto, loaded, sample, references, form)
            step.note(f"PSNR {check['psnr_db']:.1f} dB, max abs err {check['max_abs_err']:.2e} -> "
                      f"{'ok' if check['passed'] else 'FAILED'}")
    annotate(proto, {k: v for k, v in info.items() if k != "forms"} | {"form": form, **entry})
    path = result.out_dir / onnx_name(form)
    with progress.stage("write", form, what=f"checking and writing {path.name}"):
        save_checked(proto, path)
    result.written.append(path)
    entry["bytes"], entry["sha256"] = path.stat().st_size, file_sha256(path)  # a reader can tell a replaced file
    info["forms"][form] = entry
    nc = entry["node_counts"]
    progress.note(f"[{form}] wrote {path} ({entry['bytes'] / 1e6:.1f} MB, {nc['total']} nodes, "
                  f"max {nc['max_per_block']} per transformer block)")
    return type(proto).FromString(traced)  # the graph as traced: the variants start from it


def _fp32_parity(proto, loaded, sample, references: dict, form: str) -> dict:
    """The ONNX Runtime output against PyTorch's; the output is kept in `references` (the FP16/INT8 variants'
    checks compare against it, so the FP32 graph runs once). PyTorch's output is the same for every form: it is
    computed once, under the key "pytorch"."""
    from ..runtime.ort import OnnxRuntimeRunner
    from ..runtime.parity import as_batch, output_parity
    from ..runtime.pytorch import torch_upscaler

    with OnnxRuntimeRunner(proto, ["CPUExecutionProvider"]) as ort_runner:
        references[form] = ort_runner.upscale(as_batch(sample))
    if "pytorch" not in references:
        references["pytorch"] = torch_upscaler(loaded.model)(as_batch(sample))
    return output_parity(lambda batch: references[form], references["pytorch"], sample, FP32_PSNR_DB)


def _write_variants(loaded, protos: dict, request: ExportRequest, sample, result: ExportResult, progress: Progress,
                    references: dict) -> None:
    from ..calibration.variants import CALIBRATION_FILE
    from ..calibration.variants import FILES as VARIANT_FILES
    from ..calibration.writer import VariantTarget, write_variants
    from ..export.folder import graph_opset
    from ..export.onnx_export import ExportOptions
    from ..io.gate import file_sha256

    options = request.onnx or ExportOptions()
    base = {k: v for k, v in result.info.items() if k != "forms"}
    target = VariantTarget(result.out_dir, base, sample, request.validate, progress.note, options.static_shape,
                           options.opset, progress, references)
    variants = write_variants(loaded, protos, list(request.forms), request.variants, target)
    result.info["variants"] = variants
    for entries in variants.values():  # sha256 of each file, as for the forms
        for entry in (e for e in entries.values() if isinstance(e, dict) and "file" in e):
            entry["sha256"] = file_sha256(result.out_dir / entry["file"])
            entry["opset"] = graph_opset(result.out_dir / entry["file"])
        if entries.get("calibration"):
            entries["calibration_sha256"] = file_sha256(result.out_dir / entries["calibration"])
    if request.variants.int8:
        result.written.append(result.out_dir / CALIBRATION_FILE)
    result.written += [result.out_dir / VARIANT_FILES[(p, f)] for p, entries in variants.items()
                       for f, e in entries.items() if isinstance(e, dict) and "file" in e]
