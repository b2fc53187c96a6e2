"""Checkpoint loading: safe formats only, architecture and hyper-parameters read from the weights."""
from __future__ import annotations

import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..io.atomic import atomic_path
from ..io.gate import file_sha256
from .config import SRConfig, preset, preset_name

if TYPE_CHECKING:  # PyTorch is imported where a checkpoint is read: ONNX / engine paths use this module without it
    import torch

    from .network import SRTransformer

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "ema")
# Buffers the official code stores but this implementation derives from coordinates.
DERIVED_BUFFERS = re.compile(r"(relative_position_index|attn_mask)$")
CONFIG_METADATA_KEY = "agileir_config"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CHECKPOINT = "agileir_light_x4.safetensors"


class ModelLoadError(ValueError):
    """A checkpoint cannot be read or does not fit a supported architecture."""


@dataclass
class LoadedModel:
    model: SRTransformer
    config: SRConfig
    path: Path
    sha256: str

    @property
    def preset(self) -> str | None:
        return preset_name(self.config)


def default_checkpoint() -> Path:
    path = WEIGHTS_DIR / DEFAULT_CHECKPOINT
    if not path.exists():
        raise ModelLoadError(f"the bundled default checkpoint {path.name} is missing from this install")
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict and metadata of a .safetensors or .pth/.pt file (weights only, never code)."""
    import torch  # first: without PyTorch this is a missing package (exit 3), not an unreadable file

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ModelLoadError(f"{path.name} is not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        kind = _pickle_kind(path)
        if kind == "foreign":  # text, an image, a truncated file: not a checkpoint at all
            raise ModelLoadError(f"{path.name} is not a PyTorch checkpoint (neither a zip archive nor a pickle); "
                                 "expected a .pth/.pt saved by torch.save, or .safetensors") from None
        if kind == "damaged":  # a damaged pickle, not one that asks for code
            raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint ({_first(e)})") from None
        raise ModelLoadError(f"refusing {path.name}: it needs arbitrary code to unpickle, which is never "
                             f"executed ({_first(e)})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint ({str(e)[:160]})") from None
    return unwrap_state_dict(obj, path.name), {}


def _first(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    named = [ln for ln in lines if "Unsupported" in ln]  # torch's reason among its advice lines
    noise = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
    return next(iter(named), next((ln for ln in lines if not ln.startswith(noise)),
                                  lines[0] if lines else type(e).__name__))[:160]


def _pickle_kind(path: Path) -> str:
    """What torch.save writes is a zip archive (PK; its pickle is torch's to judge) or a legacy pickle (protocol
    byte 0x80): "archive", "foreign" (neither), "damaged" (a pickle whose opcodes do not all parse) or "pickle".
    Read with pickletools, which decodes and never executes."""
    import pickletools

    with open(path, "rb") as f:
        head = f.read(2)
        if head == b"PK":
            return "archive"
        if head[:1] != b"\x80":
            return "foreign"
        f.seek(0)
        try:
            for _ in pickletools.genops(f):
                pass
        except Exception:  # a truncated or damaged stream  # noqa: BLE001
            return "damaged"
    return "pickle"


def unwrap_state_dict(obj, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    import torch

    for _ in range(3):  # nested wrappers such as {"state_dict": {"params_ema": ...}}
        if not isinstance(obj, dict):
            break
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{name} holds no state dict (looked for {', '.join(WRAPPER_KEYS)} or raw tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _count(sd: dict, pattern: str) -> int:
    found = {int(m.group(1)) for k in sd if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_config(sd: dict[str, torch.Tensor]) -> SRConfig:
    """Architecture and hyper-parameters from tensor shapes and key counts."""
    if "conv_first.weight" not in sd:
        raise ModelLoadError("not an AgileIR/SwinIR checkpoint: conv_first.weight is missing")
    if any(k.endswith("groupatt.qkvs.0.weight") for k in sd):
        raise ModelLoadError("this checkpoint was saved after fuse(); load the unfused weights instead")
    if any(".attn.groupatt." in k for k in sd):
        arch = "agileir"
    elif any(k.endswith(".attn.qkv.weight") for k in sd):
        arch = "swinir"
    else:
        raise ModelLoadError("unknown attention layout: neither AgileIR (attn.groupatt) nor SwinIR (attn.qkv) keys")
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = _count(sd, r"layers\.(\d+)\.")
    depths, heads, key_dims = [], [], []
    window = 0
    for i in range(n_layers):
        depths.append(_count(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\."))
        table = sd[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"]
        heads.append(table.shape[1])
        window = (math.isqrt(table.shape[0]) + 1) // 2
        if arch == "agileir":
            qkv_out = sd[f"layers.{i}.residual_group.blocks.0.attn.groupatt.qkvs.0.c.weight"].shape[0]
            key_dims.append((qkv_out - embed_dim // heads[-1]) // 2)
    mlp_ratio = sd["layers.0.residual_group.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim
    if "conv_before_upsample.0.weight" in sd:
        upsampler = "pixelshuffle"
        convs = [k for k in sd if re.fullmatch(r"upsample\.\d+\.weight", k)]
        first = sd[convs[0]].shape[0] // sd["conv_before_upsample.0.weight"].shape[0]
        scale = 3 if first == 9 else 2 ** len(convs)
    elif "upsample.0.weight" in sd:
        upsampler = "pixelshuffledirect"
        scale = math.isqrt(sd["upsample.0.weight"].shape[0] // in_chans)
    else:
        raise ModelLoadError("no supported upsampler found (pixelshuffledirect or pixelshuffle)")
    resi = "3conv" if "conv_after_body.0.weight" in sd else "1conv"
    return SRConfig(arch, scale, embed_dim, tuple(depths), tuple(heads), window, mlp_ratio,
                    tuple(key_dims) if arch == "agileir" else None, upsampler, resi, in_chans)


def checkpoint_filter(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official AgileIR/SwinIR state dict onto this implementation (timm's checkpoint_filter_fn)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items() if not DERIVED_BUFFERS.search(k)}


def load_model(path: str | Path | None = None, preset_or_config: str | SRConfig | None = None,
               upstream_compat: bool | None = None, fuse: bool = False) -> LoadedModel:
    """Load a checkpoint (default: the bundled AgileIR-light x4) into an eval-mode model."""
    path = Path(path) if path is not None else default_checkpoint()
    sd, metadata = read_checkpoint(path)
    if isinstance(preset_or_config, str):
        config = preset(preset_or_config)
    elif isinstance(preset_or_config, SRConfig):
        config = preset_or_config
    elif CONFIG_METADATA_KEY in metadata:
        config = SRConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
    else:
        config = infer_config(sd)
    if upstream_compat is not None:
        config = config.replace(upstream_compat=upstream_compat)
    from .network import build_model

    model = build_model(config)
    sd = checkpoint_filter(sd)
    expected = model.state_dict()
    problems = [f"{k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
                for k, v in sd.items() if k in expected and v.shape != expected[k].shape][:1]
    if problems:
        raise ModelLoadError(f"{path.name} does not fit {config.arch} {preset_name(config) or ''}: {problems[0]}")
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {result.missing_keys[0]})")
    if result.unexpected_keys:
        problems.append(f"unexpected {len(result.unexpected_keys)} keys (e.g. {result.unexpected_keys[0]})")
    if problems:
        raise ModelLoadError(f"{path.name} does not fit {config.arch} {preset_name(config) or ''}: "
                             + "; ".join(problems))
    model.eval()
    if fuse:
        model.fuse()
    return LoadedModel(model, config, path, file_sha256(path))


def save_safetensors(model: SRTransformer, path: str | Path, half: bool = False,
                     extra_metadata: dict[str, str] | None = None) -> None:
    """Write an (unfused) model's weights with its config in the metadata; atomic."""
    from safetensors.torch import save_file

    path = Path(path)
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
          for k, v in model.state_dict().items()}
    meta = {CONFIG_METADATA_KEY: json.dumps(model.config.to_dict()), **(extra_metadata or {})}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
