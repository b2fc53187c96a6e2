"""`agileir-export`: checkpoint -> fused model -> one ONNX file per form (model.onnx, model.plugin.onnx,
model.attention.onnx; agileir.export.forms) + export.json, and with --fp16 / --int8 the reduced-precision
variants of each form (agileir.calibration)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..calibration import CALIBRATORS
from ..export.forms import DEFAULT_FORM_SET, form_choices, forms_of, onnx_name
from .common import (CliError, friendly_errors, load_torch_model, model_options, require_module, target_options,
                     write_json)

# The export gate is PSNR, as in `agileir validate`. Max abs error is reported, not gated: on the synthetic
# sample's flat regions float32 rounding reaches ~1e-3 for the trained x4 model (ONNX Runtime graph
# optimisations on or off), while on natural images (Set5, tested) it stays near 1e-6.
FP32_PSNR_DB = 60.0


def static_shape_option(text: str | None) -> tuple[int, int, int, int] | None:
    """--static-shape BxCxHxW (all four dims: the exported graph is fixed to them)."""
    if not text:
        return None
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise CliError(f"--static-shape must look like 1x3x64x64, got {text!r}")
    return dims  # type: ignore[return-value]


def export_artifacts(loaded, out_dir: Path, forms: list[str], static_shape=None, opset: int = 17, fold: str = "all",
                     validate: bool = True, echo=click.echo, variants=None) -> dict:
    """Export, validate in ONNX Runtime, annotate and write each form (and the requested FP16/INT8
    variants); returns export.json's content."""
    from .. import __version__
    from ..calibration.writer import write_variants
    from ..export.onnx_export import ExportOptions, annotate, export_onnx, node_counts, save_checked
    from ..runtime.pytorch import torch_upscaler
    from ..models.config import preset_name
    from ..models.gswa_node import identity
    from ..runtime.ort import OnnxRuntimeRunner
    from ..runtime.parity import output_parity
    from ..io.samples import sample_image

    config = loaded.config
    options = ExportOptions(opset=opset, static_shape=static_shape, fold=fold)
    info = {
        "toolkit_version": __version__,
        "source_checkpoint": {"file": loaded.path.name, "sha256": loaded.sha256},
        "config": config.to_dict(), "preset": preset_name(config),
        "scale": config.scale, "window": config.window_size, "opset": opset, "fold": fold,
        "input": {"name": "lr", "layout": "NCHW", "range": "RGB 0..1",
                  "shape": list(static_shape) if static_shape else ["batch", 3, "height", "width"]},
        "output": {"name": "sr", "shape": ["batch", 3, f"height*{config.scale}", f"width*{config.scale}"]},
        "plugin_node": identity(),
        "forms": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = sample_image() if not static_shape else sample_image(static_shape[3], static_shape[2])
    import onnx

    protos = {}
    for form in forms:
        t0 = time.time()
        echo(f"[{form}] tracing and cleaning the graph ...")
        proto = export_onnx(loaded.model, form, options)
        protos[form] = onnx.ModelProto.FromString(proto.SerializeToString())
        entry: dict[str, Any] = {"file": onnx_name(form), "node_counts": node_counts(proto),
                                 "export_s": round(time.time() - t0, 1)}
        if validate:
            annotate(proto, {"scale": config.scale, "window": config.window_size, "form": form})
            with OnnxRuntimeRunner(proto, ["CPUExecutionProvider"]) as ort_runner:
                check = output_parity(ort_runner, torch_upscaler(loaded.model), sample, FP32_PSNR_DB)
            entry["validation"] = check
            echo(f"[{form}] ONNX Runtime vs PyTorch on the sample image: PSNR {check['psnr_db']:.1f} dB, "
                 f"max abs err {check['max_abs_err']:.2e} -> {'ok' if check['passed'] else 'FAILED'}")
        annotate(proto, {k: v for k, v in info.items() if k != "forms"} | {"form": form, **entry})
        path = out_dir / onnx_name(form)
        save_checked(proto, path)
        entry["bytes"] = path.stat().st_size
        info["forms"][form] = entry
        nc = entry["node_counts"]
        echo(f"[{form}] wrote {path} ({entry['bytes'] / 1e6:.1f} MB, {nc['total']} nodes, "
             f"max {nc['max_per_block']} per transformer block)")
    if variants is not None and variants.any:
        if variants.int8 and "standard" not in protos:  # calibration runs on the standard form
            echo("[standard] tracing the standard form for INT8 calibration (not written) ...")
            protos["standard"] = export_onnx(loaded.model, "standard", options)
        base = {k: v for k, v in info.items() if k != "forms"}
        info["variants"] = write_variants(loaded, protos, forms, out_dir, sample, variants, base, validate, echo,
                                          static_shape, opset)
    write_json(out_dir / "export.json", info)
    return info


@click.command(name="export")
@click.argument("model", required=False)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="output folder [default: export_<checkpoint name>]")
@click.option("--form", type=click.Choice(form_choices()), default=DEFAULT_FORM_SET, show_default=True,
              help="both: standard and plugin; all: also attention (ONNX Attention nodes, opset 23)")
@click.option("--static-shape", help="export for one input shape BxCxHxW instead of dynamic batch/H/W")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(17, 21))
@click.option("--fold", type=click.Choice(["all", "small"]), default="all", show_default=True,
              help="evaluate constant nodes at export: all (fewest nodes; the standard form stores the gathered "
                   "bias tables, ~7x the file) or small (weight transposes only, the small file)")
@click.option("--no-validate", is_flag=True, help="skip the ONNX Runtime parity check")
@click.option("--fp16", is_flag=True, help="also write FP16 variants (model[.plugin].fp16.onnx), FP32 I/O")
@click.option("--int8", is_flag=True, help="also write INT8 Q/DQ variants (model[.plugin].int8.onnx) and calibration.json")
@click.option("--calibrator", type=click.Choice(CALIBRATORS), default="entropy",
              show_default=True, help="INT8 activation range calibrator")
@click.option("--calib-dir", type=click.Path(file_okay=False),
              help="folder of LR calibration images [default: the bundled set]")
@click.option("--calib-json", type=click.Path(dir_okay=False),
              help="reuse the ranges of a calibration.json instead of calibrating")
@click.option("--fp16-keep-fp32", "fp16_block", help="comma-separated op types kept FP32 in the FP16 variant "
              "[default: LayerNormalization]; '' keeps none")
@target_options
@model_options
@friendly_errors
def export_cmd(model, out_dir, form, static_shape, opset, fold, no_validate, fp16, int8, calibrator, calib_dir,
               calib_json, fp16_block, target, compute_capability, preset_name, upstream_compat):
    """Export MODEL (default: bundled AgileIR-light x4) to ONNX: standard ops, GSWA plugin and Attention forms."""
    from ..calibration.writer import VariantOptions

    from ..runtime.tensorrt.builder import parse_compute_capabilities

    shape = static_shape_option(static_shape)
    caps = parse_compute_capabilities(compute_capability)
    if caps and target != "rtx":
        raise CliError("--compute-capability needs --target rtx")
    if (calib_dir or calib_json or calibrator != "entropy") and not int8:
        raise CliError("--calibrator, --calib-dir and --calib-json need --int8")
    if calib_json and (calib_dir or calibrator != "entropy"):
        raise CliError("--calib-json reuses recorded ranges: it excludes --calib-dir and --calibrator")
    if calib_dir and not Path(calib_dir).is_dir():
        raise CliError(f"calibration folder not found: {calib_dir}")
    if fp16_block is not None and not fp16:
        raise CliError("--fp16-keep-fp32 needs --fp16")
    if fp16:
        require_module("onnxconverter_common", "onnx", "--fp16", package="onnxconverter-common")
    block = tuple(op.strip() for op in fp16_block.split(",") if op.strip()) if fp16_block is not None else None
    variants = VariantOptions(fp16, int8, calibrator, Path(calib_dir) if calib_dir else None,
                              Path(calib_json) if calib_json else None, block)
    _check_export_outputs(Path(out_dir) if out_dir else None, model, forms_of(form), fp16, int8, calib_dir,
                          calib_json)
    loaded = load_torch_model(model, preset_name, upstream_compat)
    if int8:  # bad calibration input fails here, before minutes of export
        from ..calibration.dataset import load_images
        from ..calibration.record import Calibration

        if calib_json:
            variants.calibration = Calibration.load(calib_json)
            variants.calibration.check_checkpoint(loaded.sha256)
        else:
            variants.images = load_images(variants.calib_dir)
    out = Path(out_dir) if out_dir else Path(f"export_{loaded.path.stem}")
    forms = forms_of(form)
    info = export_artifacts(loaded, out, forms, shape, opset, fold, validate=not no_validate, variants=variants)
    click.echo(f"wrote {out / 'export.json'}")
    failed = [f for f, e in info["forms"].items() if not e.get("validation", {}).get("passed", True)]
    failed += [f"{f} {p}" for p, entries in info.get("variants", {}).items() for f, e in entries.items()
               if isinstance(e, dict) and not e.get("validation", {}).get("passed", True)]
    if failed:
        raise CliError(f"ONNX Runtime validation failed for: {', '.join(failed)} (see export.json)")
    engine_step(sorted(out.glob("model*.onnx")), target=target, compute_capabilities=caps)


def export_outputs(out: Path, forms: list[str], fp16: bool, int8: bool) -> list[Path]:
    """Every file agileir-export may write into `out`."""
    names = [onnx_name(f) for f in forms] + ["export.json"]
    names += [onnx_name(f, "fp16") for f in forms if fp16] + [onnx_name(f, "int8") for f in forms if int8]
    names += ["calibration.json"] if int8 else []
    names += [n[: -len(".onnx")] + ".plan" for n in list(names) if n.endswith(".onnx")]
    names += [n[: -len(".onnx")] + ".json" for n in list(names) if n.endswith(".onnx")]
    return [out / n for n in names] + [out / "timing.cache"]


def _check_export_outputs(out: Path | None, model, forms, fp16, int8, calib_dir, calib_json) -> None:
    from ..models.load import default_checkpoint
    from ..io.outputs import check_outputs, input_files

    model_path = Path(model) if model else default_checkpoint()
    out = out or Path(f"export_{model_path.stem}")
    check_outputs([(p, "agileir-export") for p in export_outputs(out, forms, fp16, int8)],
                  [model_path, *input_files(calib_dir, calib_json)])


def engine_step(onnx_files: list[Path], echo=click.echo, target: str = "tensorrt",
                compute_capabilities: tuple[str, ...] = ()) -> None:
    """Build an engine per ONNX file where the target's TensorRT (and, for TensorRT proper, a GPU) exists;
    otherwise say so in one line and print the commands that build them where they can (the ONNX files are
    ready). TensorRT-RTX (--target rtx) builds here, on the CPU."""
    from ..runtime.tensorrt.builder import BuildOptions, build_engine, inspect_onnx, trtexec_command, trtexec_line
    from ..runtime.tensorrt.env import TensorRTUnavailable, require_gpu, require_tensorrt

    if target == "rtx":
        require_tensorrt("rtx")  # TensorRTUnavailable -> exit 3 with the install hint
        options = BuildOptions(flavour="rtx", compute_capabilities=compute_capabilities)
        for path in onnx_files:
            sidecar = build_engine(path, path.with_suffix(".plan"), options, echo=echo)
            echo(f"engine: {path.with_suffix('.plan')} (TensorRT-RTX, {sidecar['precision']}, {sidecar['form']} form, "
                 f"for {', '.join(sidecar['target_compute_capabilities'])})")
        return
    try:
        require_tensorrt()
        require_gpu()
    except TensorRTUnavailable as e:
        echo(f"engines: not built here ({e}); the ONNX files are ready. On a machine with TensorRT >= 10 and a GPU:")
        for path in onnx_files:
            info = inspect_onnx(path)
            engine = path.with_suffix(".plan")
            echo(f"  agileir build {path} -o {engine}")
            echo(f"    or: {trtexec_line(trtexec_command(path, engine, graph_precision=info.precision, form=info.form))}")
        echo("  (TensorRT-RTX engines for RTX GPUs build here, without a GPU: --target rtx)")
        return
    for path in onnx_files:
        sidecar = build_engine(path, path.with_suffix(".plan"), echo=echo)
        echo(f"engine: {path.with_suffix('.plan')} ({sidecar.get('precision', '?')}, {sidecar.get('form', '?')} form)")


def register(group: click.Group) -> None:
    group.add_command(export_cmd)
