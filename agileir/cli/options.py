"""Click option groups, in one place, as Polygraphy's argument groups: each adds its options to a command and
hands the command one object, built once.

* the upscale path (agileir.upscale.options): `tiling=TilingOptions`, `encoding=EncodingOptions`,
  `pipeline=PipelineOptions`; defaults from the dataclasses, so agileir-infer, `agileir video` and `agileir batch`
  cannot drift apart;
* the deployment jobs: `request=` an agileir.deploy.ExportRequest (export_request_options), a
  agileir.deploy.build.BuildRequest (build_request_options) or a agileir.deploy.calibrate.CalibrateRequest
  (calibrate_request_options); the command hands it to one library function.

Bad values end in one `error:` line (exit 2), before any work.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from ..calibration import CALIBRATORS, PEERS
from ..export.forms import DEFAULT_FORM_SET, FORMS, form_choices
from ..export.targets import COMPAT_TARGETS
from ..upscale.options import EncodingOptions, PipelineOptions, TilingOptions
from .common import CliError, model_options, require_module, target_options

TILING, ENCODING, PIPELINE = TilingOptions(), EncodingOptions(), PipelineOptions()


class Seconds(click.ParamType):
    """A finite number of seconds >= 0 (click's FloatRange lets inf and nan through)."""
    name = "seconds"

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{value!r} is not a finite number of seconds >= 0", param, ctx)
        return seconds


def tiling_options(fn):
    """--tile auto|N, --tile-overlap N, --max-memory SIZE -> `tiling` (bad values: one error line, exit 2)."""
    @functools.wraps(fn)
    def wrapper(*args, tile, tile_overlap, max_memory, **kwargs):
        try:
            kwargs["tiling"] = TilingOptions.parse(tile, tile_overlap, max_memory)
        except ValueError as e:
            raise CliError(str(e)) from None
        return fn(*args, **kwargs)

    for option in reversed([
        click.option("--tile", default=TILING.tile_text, show_default=True,
                     help="tile size in input pixels; auto: whole image unless over the memory budget; 0: whole image"),
        click.option("--tile-overlap", default=TILING.overlap, show_default=True, type=click.IntRange(0),
                     help="tile overlap in input pixels"),
        click.option("--max-memory", help="memory budget for --tile auto, e.g. 4G [default: half of available "
                                          "memory]"),
    ]):
        wrapper = option(wrapper)
    return wrapper


def encoding_options(fn):
    """--codec --crf --pix-fmt --start --frames -> `encoding`."""
    @functools.wraps(fn)
    def wrapper(*args, codec, crf, pix_fmt, start, frames, **kwargs):
        kwargs["encoding"] = EncodingOptions(codec, crf, pix_fmt, start, frames)
        return fn(*args, **kwargs)

    for option in reversed([
        click.option("--codec", default=ENCODING.codec, show_default=True,
                     help="video encoder (FFmpeg name), e.g. libx265, ffv1"),
        click.option("--crf", default=ENCODING.crf, show_default=True, type=click.IntRange(0, 63),
                     help="constant rate factor (x264/x265/vpx/av1 encoders; 0 is lossless for x264)"),
        click.option("--pix-fmt", default=ENCODING.pix_fmt, show_default=True,
                     help="encoded pixel format, e.g. yuv444p, rgb24"),
        click.option("--start", default=ENCODING.start, show_default=True, type=Seconds(),
                     help="first second to upscale"),
        click.option("--frames", type=click.IntRange(1), help="number of frames to upscale (a trial run) "
                                                              "[default: all]"),
    ]):
        wrapper = option(wrapper)
    return wrapper


def pipeline_options(batch_help: str = "images or frames of one size per model call (the memory budget is shared "
                                       "by the batch)", fail_fast: bool = True):
    """--batch N [--fail-fast] -> `pipeline`."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, batch, fail_fast=PIPELINE.fail_fast, **kwargs):
            kwargs["pipeline"] = PipelineOptions(batch=batch, fail_fast=fail_fast)
            return fn(*args, **kwargs)

        if fail_fast:
            wrapper = click.option("--fail-fast", is_flag=True,
                                   help="folder input: stop at the first bad file (exit 2) instead of skipping it "
                                        "and reporting it at the end (exit 1)")(wrapper)
        return click.option("--batch", default=PIPELINE.batch, show_default=True, type=click.IntRange(1),
                            help=batch_help)(wrapper)
    return decorate


def _with_options(wrapper, options):
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _one_line(build):
    """`build()`, its ValueError as one `error:` line (exit 2)."""
    try:
        return build()
    except ValueError as e:
        raise CliError(str(e)) from None


# -- agileir-export ----------------------------------------------------------------------------------------


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


def _check_export_combinations(target, caps, fp16, int8, calibrator, calib_dir, calib_json, fp16_block) -> None:
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


def _handing_request(fn, make, names: tuple[str, ...]):
    """`fn` called with the options `names` replaced by one `request` = make(*their values)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        kwargs["request"] = _built(make, *(kwargs.pop(n) for n in names))
        return fn(*args, **kwargs)

    return wrapper


def _built(make, *values):
    """A request object from parsed options; a missing extra met while building it (the export options import
    onnx, a checkpoint's torch) is the command's one-line exit 3, as inside the command."""
    from .common import cli_error_for

    try:
        return make(*values)
    except ModuleNotFoundError as e:
        raise cli_error_for(e) from None


def _export_request(model, out_dir, form, static_shape, opset, fold, compat, no_validate, fp16, int8, calibrator,
                    calib_dir, calib_json, fp16_block, target, compute_capability, preset_name, upstream_compat):
    from ..calibration.writer import VariantOptions
    from ..deploy import EngineTarget, ExportRequest
    from ..export.forms import forms_of
    from ..export.onnx_export import ExportOptions
    from ..runtime.tensorrt.builder import parse_compute_capabilities

    shape = static_shape_option(static_shape)
    caps = _one_line(lambda: parse_compute_capabilities(compute_capability))
    _check_export_combinations(target, caps, fp16, int8, calibrator, calib_dir, calib_json, fp16_block)
    block = tuple(op.strip() for op in fp16_block.split(",") if op.strip()) if fp16_block is not None else None
    variants = VariantOptions(fp16, int8, calibrator, Path(calib_dir) if calib_dir else None,
                              Path(calib_json) if calib_json else None, block)
    return ExportRequest(model, Path(out_dir) if out_dir else None, tuple(forms_of(form)),
                         ExportOptions(opset=opset, static_shape=shape, fold=fold, compat=compat), not no_validate,
                         variants, EngineTarget(target, caps), preset_name, upstream_compat)


def export_request_options(fn):
    """[MODEL] and every option of agileir-export -> `request` (agileir.deploy.ExportRequest)."""
    names = ("model", "out_dir", "form", "static_shape", "opset", "fold", "compat", "no_validate", "fp16", "int8",
             "calibrator", "calib_dir", "calib_json", "fp16_block", "target", "compute_capability", "preset_name",
             "upstream_compat")

    wrapper = _handing_request(fn, _export_request, names)
    wrapper = target_options(model_options(wrapper))
    return _with_options(wrapper, [
        click.argument("model", required=False),
        click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
                     help="output folder [default: export_<checkpoint name>]"),
        click.option("--form", type=click.Choice(form_choices()), default=DEFAULT_FORM_SET, show_default=True,
                     help="both: standard and plugin; all: also attention (ONNX Attention nodes, opset 23)"),
        click.option("--static-shape", help="export for one input shape BxCxHxW instead of dynamic batch/H/W"),
        click.option("--opset", default=17, show_default=True, type=click.IntRange(17, 21)),
        click.option("--fold", type=click.Choice(["all", "small"]), default="all", show_default=True,
                     help="evaluate constant nodes at export: all (fewest nodes; the standard form stores the "
                          "gathered bias tables, ~7x the file) or small (weight transposes only, the small file)"),
        click.option("--compat", type=click.Choice(COMPAT_TARGETS), default="latest", show_default=True,
                     help="only what this TensorRT's ONNX parser imports: jetpack5 (TensorRT 8.5), jetpack6.0 (8.6), "
                          "jetpack6 (10.3), trt10, rtx, latest (docs/jetson.md)"),
        click.option("--no-validate", is_flag=True, help="skip the ONNX Runtime parity check"),
        click.option("--fp16", is_flag=True, help="also write FP16 variants (model[.plugin].fp16.onnx), FP32 I/O"),
        click.option("--int8", is_flag=True,
                     help="also write INT8 Q/DQ variants (model[.plugin].int8.onnx) and calibration.json"),
        click.option("--calibrator", type=click.Choice(CALIBRATORS), default="entropy", show_default=True,
                     help="INT8 activation range calibrator"),
        click.option("--calib-dir", type=click.Path(file_okay=False),
                     help="folder of LR calibration images [default: the bundled set]"),
        click.option("--calib-json", type=click.Path(dir_okay=False),
                     help="reuse the ranges of a calibration.json instead of calibrating"),
        click.option("--fp16-keep-fp32", "fp16_block", help="comma-separated op types kept FP32 in the FP16 "
                     "variant [default: LayerNormalization]; '' keeps none"),
    ])


# -- agileir build -----------------------------------------------------------------------------------------


def _build_request(onnx_path, output, min_shape, opt_shape, max_shape, precision, workspace_mib, opt_level,
                   timing_cache, plugin, plugin_lib, target, compute_capability, verbose):
    from ..deploy.build import BuildRequest
    from ..runtime.tensorrt.builder import BuildOptions, ShapeProfile, parse_compute_capabilities, parse_shape

    def options():
        return BuildOptions(
            profile=ShapeProfile(parse_shape(min_shape), parse_shape(opt_shape), parse_shape(max_shape)),
            precision=None if precision == "auto" else precision, workspace_mib=workspace_mib,
            optimization_level=opt_level, timing_cache=Path(timing_cache) if timing_cache else None, plugin=plugin,
            plugin_library=Path(plugin_lib) if plugin_lib else None, verbose=verbose, flavour=target,
            compute_capabilities=parse_compute_capabilities(compute_capability))

    request = BuildRequest(Path(onnx_path), Path(output) if output else None, _one_line(options))
    _one_line(request.engine_path)  # the engine's suffix, before any work
    return request


def build_request_options(fn):
    """ONNX and every build option of `agileir build` -> `request` (agileir.deploy.build.BuildRequest)."""
    names = ("onnx_path", "output", "min_shape", "opt_shape", "max_shape", "precision", "workspace_mib", "opt_level",
             "timing_cache", "plugin", "plugin_lib", "target", "compute_capability", "verbose")

    wrapper = _handing_request(fn, _build_request, names)
    wrapper = target_options(wrapper)
    return _with_options(wrapper, [
        click.argument("onnx_path", metavar="ONNX", type=click.Path(dir_okay=False)),
        click.option("-o", "--output", help="engine file (.plan/.engine) [default: the ONNX path with .plan]; "
                                            "its description goes beside it as .json"),
        click.option("--min-shape", default="1x3x1x1", show_default=True, help="profile minimum, BxCxHxW or HxW"),
        click.option("--opt-shape", default="1x3x256x256", show_default=True,
                     help="profile optimum (kernels are timed here)"),
        click.option("--max-shape", default="1x3x512x512", show_default=True,
                     help="profile maximum (larger inputs are tiled)"),
        click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "int8"]), default="auto",
                     show_default=True,
                     help="auto: the graph's; fp16 on an FP32 graph uses TensorRT 10's weak typing (refused on 11)"),
        click.option("--workspace", "workspace_mib", default=4096, show_default=True, type=click.IntRange(16),
                     help="workspace memory pool limit, MiB"),
        click.option("--opt-level", default=3, show_default=True, type=click.IntRange(0, 5),
                     help="builder optimisation level"),
        click.option("--timing-cache", type=click.Path(dir_okay=False),
                     help="timing cache file, read and updated [default: timing.cache beside the engine]"),
        click.option("--plugin", type=click.Choice(["auto", "library", "qdp"]), default="auto", show_default=True,
                     help="GSWA plugin for model.plugin.onnx: C++ library, Python AOT QDP, or the library when "
                          "built"),
        click.option("--plugin-lib", type=click.Path(dir_okay=False), help="libagileir_trt_plugins.so to load"),
        click.option("--verbose", is_flag=True, help="TensorRT's verbose log"),
    ])


# -- agileir calibrate -------------------------------------------------------------------------------------

PEER_CHOICES = (*PEERS, "none")


def _calibrate_request(model, eval_dirs, scale, out_dir, calibrators, calib_dir, form, peers, no_sweep, no_attention,
                       no_fp16, fp16_study, threads, max_memory, preset_name, upstream_compat):
    from ..calibration.study import ReportOptions
    from ..deploy.calibrate import CalibrateRequest
    from ..upscale.memory import parse_size

    report = ReportOptions([Path(d) for d in eval_dirs], Path(out_dir), scale, tuple(calibrators) or CALIBRATORS,
                           Path(calib_dir) if calib_dir else None, form, not no_fp16, fp16_study, threads,
                           tuple(p for p in (peers or PEER_CHOICES) if p != "none"), not no_sweep, not no_attention,
                           memory_budget=_one_line(lambda: parse_size(max_memory)) if max_memory else None)
    return CalibrateRequest(report, model, preset_name, upstream_compat)


def calibrate_request_options(fn):
    """[MODEL] and every option of `agileir calibrate` -> `request` (agileir.deploy.calibrate.CalibrateRequest)."""
    names = ("model", "eval_dirs", "scale", "out_dir", "calibrators", "calib_dir", "form", "peers", "no_sweep",
             "no_attention", "no_fp16", "fp16_study", "threads", "max_memory", "preset_name", "upstream_compat")

    wrapper = _handing_request(fn, _calibrate_request, names)
    wrapper = model_options(wrapper)
    return _with_options(wrapper, [
        click.argument("model", required=False),
        click.option("--eval", "eval_dirs", multiple=True, required=True, type=click.Path(file_okay=False),
                     help="BasicSR-layout benchmark (HR/ and LR_bicubic/X{scale}/); repeat for several"),
        click.option("--scale", type=click.IntRange(1), help="defaults to the model's scale"),
        click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="calibration_report",
                     show_default=True, help="output folder"),
        click.option("--calibrator", "calibrators", multiple=True, type=click.Choice(CALIBRATORS),
                     help="INT8 calibrators to compare (repeatable) [default: all]"),
        click.option("--calib-dir", type=click.Path(file_okay=False),
                     help="LR calibration images [default: bundled set]"),
        click.option("--form", type=click.Choice(list(FORMS)), default="standard", show_default=True,
                     help="export form evaluated (the INT8 ranges always come from the standard form)"),
        click.option("--peer", "peers", multiple=True, type=click.Choice(PEER_CHOICES),
                     help="other tools' INT8 of the same graph (repeatable; 'none' for none) [default: all]; "
                          "modelopt-int8 runs where `modelopt` imports or in $AGILEIR_MODELOPT_PYTHON"),
        click.option("--no-sweep", is_flag=True, help="leave out the W6A6 / W4A4 / W8 / W4 rows"),
        click.option("--no-attention", is_flag=True, help="leave out the row with INT8 attention products"),
        click.option("--no-fp16", is_flag=True, help="leave out the FP16 variant"),
        click.option("--fp16-study", is_flag=True,
                     help="also measure FP16 vs FP32 output blocking each op type (slow: ~20 graph sessions)"),
        click.option("--threads", default=0, show_default=True, help="ONNX Runtime CPU threads for evaluation "
                                                                    "(0: all)"),
        click.option("--max-memory", help="memory a peer's calibration may take, e.g. 6G; a peer estimated over it "
                                          "is a skipped row [default: half of available memory]"),
    ])


__all__ = ["Seconds", "build_request_options", "calibrate_request_options", "encoding_options",
           "export_request_options", "pipeline_options", "static_shape_option", "tiling_options"]
