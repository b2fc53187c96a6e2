"""PyTorch runner: the fused FP32 model from a checkpoint (the reference every other backend is validated against)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..upscale.contract import check_upscaled
from .base import DeviceUnavailable, Runner


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' (CUDA when present, else the CPU), 'cpu', 'cuda' or 'cuda:N' -> a torch.device that exists here."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (auto, cpu, cuda or cuda:N)")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise DeviceUnavailable(f"device {device!r} is not available here ({count} CUDA device(s) visible to "
                                    "PyTorch); use --device cpu")
    return resolved


class PyTorchRunner(Runner):
    backend = "pytorch"

    def __init__(self, path: str | Path | None = None, preset_name: str | None = None,
                 upstream_compat: bool = False, device: str = "auto") -> None:
        from ..models.load import load_model

        loaded = load_model(path, preset_name, upstream_compat or None, fuse=True)
        super().__init__(loaded.config.scale, f"{loaded.path.name} ({loaded.preset or loaded.config.arch})",
                         window=loaded.config.window_size)
        self.loaded, self.device = loaded, resolve_device(device)
        self.config = loaded.config

    @property
    def sha256(self) -> str:
        return self.loaded.sha256

    def _activate(self) -> None:
        self.loaded.model.to(self.device)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.loaded.model(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()


def torch_upscaler(model: torch.nn.Module) :
    scale = int(getattr(getattr(model, "config", None), "scale", 0) or 0)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()
        return check_upscaled(batch, out, scale) if scale else out
    return run


def load_checked_model(path=None, preset_name: str | None = None, upstream_compat: bool = False):
    """The fused model of a checkpoint, probed once on a one-window input: a model whose output is not finite
    (NaN weights) fails here, in one line, before calibration or export start (agileir.upscale.contract)."""
    from ..models.load import load_model

    loaded = load_model(path, preset_name, upstream_compat or None, fuse=True)
    w = loaded.config.window_size
    torch_upscaler(loaded.model)(np.full((1, 3, w, w), 0.5, np.float32))
    return loaded
