"""PyTorch runner: the fused FP32 model from a checkpoint (the reference every other backend is validated against)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..upscale.contract import check_upscaled
from .base import DeviceUnavailable, Runner
from .devices import device_line


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' (CUDA when present, else the CPU), 'cpu', 'cuda' or 'cuda:N' -> a torch.device that exists here
    (agileir.runtime.devices: DeviceUnavailable for a CUDA device PyTorch does not see)."""
    from .devices import parse_device

    wanted = parse_device(device)
    if wanted.kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted.index >= count:
        raise DeviceUnavailable(f"--device {wanted.text}: CUDA is not available to PyTorch here ({count} CUDA "
                                f"device(s) visible; PyTorch {torch.__version__}); use --device cpu")
    return torch.device("cuda", wanted.index)


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
        chosen = "cpu" if self.device.type == "cpu" else f"cuda:{self.device.index or 0}"
        self.device_line = device_line(chosen, device, "no CUDA device visible to PyTorch" if chosen == "cpu" else "")

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
