"""Runners behind one interface: a callable batch upscaler plus what it needs to be used."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference import BatchUpscaler

TORCH_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass
class Runner:
    upscale: BatchUpscaler
    scale: int
    backend: str  # "pytorch" | "onnxruntime"
    description: str


def onnx_metadata(path: str | Path) -> dict:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {}
    for p in proto.metadata_props:
        try:
            meta[p.key] = json.loads(p.value)
        except json.JSONDecodeError:
            meta[p.key] = p.value
    return meta


def onnx_runner(path: str | Path, providers: list[str] | None = None, threads: int = 0) -> Runner:
    from .ort import create_session

    path = Path(path)
    meta = onnx_metadata(path)
    if "scale" not in meta:
        raise ValueError(f"{path.name} has no agileir metadata (scale); export it with agileir-export")
    session = create_session(path, providers, threads)
    name = session.get_inputs()[0].name
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {name: batch.astype(dtype)})[0].astype(np.float32)

    return Runner(run, int(meta["scale"]), "onnxruntime",
                  f"{path.name} ({meta.get('form', '?')} form, {session.get_providers()[0]})")


def torch_runner(path: str | Path | None, preset_name: str | None = None, upstream_compat: bool = False) -> Runner:
    from ..inference import torch_upscaler
    from ..models.load import load_model

    loaded = load_model(path, preset_name, upstream_compat or None, fuse=True)
    return Runner(torch_upscaler(loaded.model), loaded.config.scale, "pytorch",
                  f"{loaded.path.name} ({loaded.preset or loaded.config.arch})")


def load_runner(path: str | Path | None, preset_name: str | None = None, upstream_compat: bool = False) -> Runner:
    """PyTorch for checkpoints (default: the bundled model), ONNX Runtime for .onnx files."""
    if path is not None and Path(path).suffix == ".onnx":
        if not Path(path).is_file():
            raise FileNotFoundError(f"model not found: {path}")
        return onnx_runner(path)
    if path is not None and Path(path).suffix not in TORCH_SUFFIXES:
        raise ValueError(f"{path}: unsupported model file (expected .onnx or {', '.join(TORCH_SUFFIXES)})")
    return torch_runner(path, preset_name, upstream_compat)
