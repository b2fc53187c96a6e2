"""`agileir-export`: checkpoint -> fused model -> model.onnx + model.plugin.onnx + export.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..cli import CliError, _write_json, friendly_errors, model_options

FILES = {"standard": "model.onnx", "plugin": "model.plugin.onnx"}
FP32_PSNR_DB, FP32_MAX_ABS = 60.0, 2e-4


def parse_shape(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise CliError(f"--static-shape must look like 1x3x64x64, got {text!r}")
    return dims  # type: ignore[return-value]


def export_artifacts(loaded, out_dir: Path, forms: list[str], static_shape=None, opset: int = 17,
                     validate: bool = True, echo=click.echo) -> dict:
    """Export, validate in ONNX Runtime, annotate and write each form; returns export.json's content."""
    from .. import __version__
    from ..models.config import preset_name
    from ..runtime.ort import create_session
    from ..samples import sample_image
    from .onnx_export import ExportOptions, annotate, export_onnx, node_counts, save_checked
    from .plugin_node import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
    from .validate import parity

    config = loaded.config
    options = ExportOptions(opset=opset, static_shape=static_shape)
    info = {
        "toolkit_version": __version__,
        "source_checkpoint": {"file": loaded.path.name, "sha256": loaded.sha256},
        "config": config.to_dict(), "preset": preset_name(config),
        "scale": config.scale, "window": config.window_size, "opset": opset,
        "input": {"name": "lr", "layout": "NCHW", "range": "RGB 0..1",
                  "shape": list(static_shape) if static_shape else ["batch", 3, "height", "width"]},
        "output": {"name": "sr", "shape": ["batch", 3, f"height*{config.scale}", f"width*{config.scale}"]},
        "plugin_node": {"domain": DOMAIN, "op_type": OP_TYPE, "plugin_namespace": PLUGIN_NAMESPACE,
                        "plugin_version": PLUGIN_VERSION},
        "forms": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = sample_image() if not static_shape else sample_image(static_shape[3], static_shape[2])
    for form in forms:
        t0 = time.time()
        echo(f"[{form}] tracing and cleaning the graph ...")
        proto = export_onnx(loaded.model, form, options)
        entry = {"file": FILES[form], "node_counts": node_counts(proto), "export_s": round(time.time() - t0, 1)}
        if validate:
            check = parity(create_session(proto, ["CPUExecutionProvider"]), loaded.model, sample)
            check["passed"] = check["psnr_db"] >= FP32_PSNR_DB and check["max_abs_err"] <= FP32_MAX_ABS
            entry["validation"] = check
            echo(f"[{form}] ONNX Runtime vs PyTorch on the sample image: PSNR {check['psnr_db']:.1f} dB, "
                 f"max abs err {check['max_abs_err']:.2e} -> {'ok' if check['passed'] else 'FAILED'}")
        annotate(proto, {k: v for k, v in info.items() if k != "forms"} | {"form": form, **entry})
        path = out_dir / FILES[form]
        save_checked(proto, path)
        entry["bytes"] = path.stat().st_size
        info["forms"][form] = entry
        nc = entry["node_counts"]
        echo(f"[{form}] wrote {path} ({entry['bytes'] / 1e6:.1f} MB, {nc['total']} nodes, "
             f"max {nc['max_per_block']} per transformer block)")
    _write_json(out_dir / "export.json", info)
    return info


@click.command(name="export")
@click.argument("model", required=False)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="output folder [default: export_<checkpoint name>]")
@click.option("--form", type=click.Choice(["both", "standard", "plugin"]), default="both", show_default=True)
@click.option("--static-shape", help="export for one input shape BxCxHxW instead of dynamic batch/H/W")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(17, 21))
@click.option("--no-validate", is_flag=True, help="skip the ONNX Runtime parity check")
@model_options
@friendly_errors
def export_cmd(model, out_dir, form, static_shape, opset, no_validate, preset_name, upstream_compat):
    """Export MODEL (default: bundled AgileIR-light x4) to ONNX: standard ops and GSWA plugin form."""
    from ..cli import load_torch_model

    shape = parse_shape(static_shape)
    loaded = load_torch_model(model, preset_name, upstream_compat)
    out = Path(out_dir) if out_dir else Path(f"export_{loaded.path.stem}")
    forms = ["standard", "plugin"] if form == "both" else [form]
    info = export_artifacts(loaded, out, forms, shape, opset, validate=not no_validate)
    click.echo(f"wrote {out / 'export.json'}")
    failed = [f for f, e in info["forms"].items() if not e.get("validation", {}).get("passed", True)]
    if failed:
        raise CliError(f"ONNX Runtime parity failed for: {', '.join(failed)} (see export.json)")


def register(group: click.Group) -> None:
    group.add_command(export_cmd)
