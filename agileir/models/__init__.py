"""AgileIR / SwinIR-light models, the GSWA op and checkpoint loading.

Names are imported on first use (PEP 562), so the torch-free submodules (`config`, `gswa_node`) import
without PyTorch: the ONNX Runtime and TensorRT paths use them on deploy installs that have no torch."""
from __future__ import annotations

import importlib

_HOME = {"PRESETS": "config", "SRConfig": "config", "preset": "config", "gswa": "gswa", "LoadedModel": "load",
         "ModelLoadError": "load", "default_checkpoint": "load", "infer_config": "load", "load_model": "load",
         "save_safetensors": "load", "SRTransformer": "network", "build_model": "network"}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


__all__ = list(_HOME)
