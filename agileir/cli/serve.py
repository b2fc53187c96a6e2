"""`agileir triton`: a Triton Inference Server model repository from an agileir-export folder."""
from __future__ import annotations

import click

from .common import friendly_errors, overwrite_option


@click.command(name="triton")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "repo", required=True, type=click.Path(file_okay=False),
              help="model repository folder to write (tritonserver --model-repository=...)")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(1),
              help="instances of each onnxruntime model")
@click.option("--ort-gpu", is_flag=True, help="onnxruntime models on the GPU (KIND_GPU) instead of the CPU")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1),
              help="max_batch_size of the onnxruntime models (engines: their profile's)")
@click.option("--openvino", is_flag=True, help="also a model per ONNX variant for Triton's OpenVINO backend (CPU)")
@click.option("--plugin-lib", type=click.Path(exists=True, dir_okay=False),
              help="GSWA plugin library for plugin-form engines (default: the one agileir build finds)")
@overwrite_option
@friendly_errors
def triton_cmd(export_dir, repo, instances, ort_gpu, max_batch, openvino, plugin_lib, overwrite):
    """Write a Triton model repository (config.pbtxt per model, README.md) for the ONNX graphs and TensorRT
    engines (with their .json) of EXPORT_DIR, after validating EXPORT_DIR (export.json, files, sha256, ONNX).
    Rerunning it replaces what it wrote before; files it did not write are refused unless --overwrite."""
    from ..cluster.triton_repo import write_repository

    plan = write_repository(export_dir, repo, overwrite, ort_instances=instances,
                            ort_kind="KIND_GPU" if ort_gpu else "KIND_CPU",
                            ort_max_batch=max_batch, plugin_library=plugin_lib, openvino=openvino)
    for m in plan.models:
        click.echo(f"{m.name}: {m.backend} from {m.source.name}")
    for file, why in plan.skipped:
        click.echo(f"skipped {file}: {why}", err=True)
    click.echo(f"wrote {repo} ({len(plan.models)} models); start with: tritonserver --model-repository={repo}"
               " (see its README.md)")


def register(group: click.Group) -> None:
    group.add_command(triton_cmd)
