"""`agileir calibrate`: every precision x calibrator evaluated in ONNX Runtime CPU, with a report."""
from __future__ import annotations

from pathlib import Path

import click

from ..calibration import CALIBRATORS
from ..export.forms import FORMS
from .common import CliError, friendly_errors, load_torch_model, model_options, require_module


@click.command(name="calibrate")
@click.argument("model", required=False)
@click.option("--eval", "eval_dirs", multiple=True, required=True, type=click.Path(file_okay=False),
              help="BasicSR-layout benchmark (HR/ and LR_bicubic/X{scale}/); repeat for several")
@click.option("--scale", type=click.IntRange(1), help="defaults to the model's scale")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="calibration_report",
              show_default=True, help="output folder")
@click.option("--calibrator", "calibrators", multiple=True, type=click.Choice(CALIBRATORS),
              help="INT8 calibrators to compare (repeatable) [default: all]")
@click.option("--calib-dir", type=click.Path(file_okay=False), help="LR calibration images [default: bundled set]")
@click.option("--form", type=click.Choice(list(FORMS)), default="standard", show_default=True,
              help="export form evaluated (the INT8 ranges always come from the standard form)")
@click.option("--no-fp16", is_flag=True, help="leave out the FP16 variant")
@click.option("--fp16-study", is_flag=True,
              help="also measure FP16 vs FP32 output blocking each op type (slow: ~20 graph sessions)")
@click.option("--threads", default=0, show_default=True, help="ONNX Runtime CPU threads for evaluation (0: all)")
@model_options
@friendly_errors
def calibrate_cmd(model, eval_dirs, scale, out_dir, calibrators, calib_dir, form, no_fp16, fp16_study,
                  threads, preset_name, upstream_compat):
    """Calibrate MODEL (default: bundled AgileIR-light x4) with each INT8 calibrator, evaluate FP32, FP16 and
    every INT8 variant on --eval sets, and write calibration_report.{json,md,png} beside published
    SwinIR-light low-bit PTQ results. Any AgileIR or SwinIR checkpoint is accepted."""
    from tqdm import tqdm

    from ..quality.evaluation import benchmark_pairs, evaluate
    from ..export.onnx_export import export_onnx
    from ..io.images import read_image
    from ..calibration import report as R
    from ..calibration import variants as V
    from ..calibration.dataset import load_images
    from ..calibration.fp16 import to_fp16
    from ..calibration.fp16_study import block_study

    from ..models.load import default_checkpoint
    from ..io.outputs import OutputFolder, check_outputs, input_files

    for module, extra in (("matplotlib", "plot"), ("onnxconverter_common", "onnx")):
        require_module(module, extra, "agileir calibrate")
    chosen = tuple(calibrators) or CALIBRATORS
    out = Path(out_dir)
    planned = [out / f"calibration_report.{ext}" for ext in ("json", "md", "png")]
    planned += [out / f"calibration_{c}.json" for c in chosen]
    check_outputs([(p, "the report") for p in planned],
                  [Path(model) if model else default_checkpoint(), *input_files(*eval_dirs, calib_dir)])
    loaded = load_torch_model(model, preset_name, upstream_compat)
    scale = scale or loaded.config.scale
    if scale != loaded.config.scale:
        raise CliError(f"the model upscales x{loaded.config.scale}, not x{scale}")
    datasets = [Path(d) for d in eval_dirs]
    if len({d.name for d in datasets}) != len(datasets):
        raise CliError("--eval folders must have distinct names (they label the report columns)")
    sizes = [len(benchmark_pairs(d, scale)) for d in datasets]  # bad layout -> one-line error before work
    if calib_dir and not Path(calib_dir).is_dir():
        raise CliError(f"calibration folder not found: {calib_dir}")
    images = load_images(calib_dir)
    variants = R.variant_list(chosen, fp16=not no_fp16)
    OutputFolder(out).ensure()

    click.echo("exporting the ONNX graph(s) ...", err=True)
    forms = {"standard": export_onnx(loaded.model, "standard")}
    if form != "standard":
        forms[form] = export_onnx(loaded.model, form)
    graphs = {"fp32": forms[form]}
    if not no_fp16:
        graphs["fp16"] = to_fp16(forms[form])
    readers = V.readers_of(forms["standard"])
    info = {"file": loaded.path.name, "sha256": loaded.sha256, "arch": loaded.config.arch,
            "preset": loaded.preset, "scale": scale, "form": form, "threads": threads,
            "calibration_images": f"{len(images)} images from {calib_dir or 'the bundled set'}"}
    with tqdm(total=R.report_steps(variants, sizes, len(images), len(readers)), desc="calibrate+evaluate",
              unit="step") as bar:
        for v in variants:
            if v.calibrator:
                bar.set_postfix_str(f"calibrating {v.calibrator}")
                cal = V.calibrate(forms["standard"], images, v.calibrator,
                                  {"source_checkpoint": {"file": loaded.path.name, "sha256": loaded.sha256}},
                                  bar.update)
                cal.save(out / f"calibration_{v.calibrator}.json")
                graphs[v.name] = V.int8_forms(forms, cal)[form]
        bar.set_postfix_str("evaluating")
        report = R.build_report(info, graphs, variants, datasets, scale, evaluate, bar.update)
    paths = R.write_report(report, out)  # written before the slow FP16 study, rewritten with it below
    if fp16_study:
        # the smallest image of the first set: the study runs the graph about 25 times
        from PIL import Image

        def pixels(path):
            with Image.open(path) as im:
                return im.width * im.height

        lr_path = min((lr for _, lr in benchmark_pairs(datasets[0], scale)), key=pixels)
        with tqdm(desc="FP16 op-blocking study", unit="block list") as bar:
            rows = block_study(forms["standard"], read_image(lr_path).to_rgb(), progress=bar.update)
        report["fp16_study"] = {"image": f"{datasets[0].name}/{lr_path.name}", "form": "standard", "rows": rows}
        paths = R.write_report(report, out)
    for v in report["variants"]:
        cells = "  ".join(f"{n} {d['psnr']:.2f} dB / {d['ssim']:.4f} ({d['delta_psnr']:+.2f})"
                          for n, d in v["datasets"].items())
        click.echo(f"{v['name']:<16}{cells}")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


def register(group: click.Group) -> None:
    group.add_command(calibrate_cmd)
