"""Model configurations and the named presets of the official AgileIR / SwinIR configs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ARCHS = ("agileir", "swinir")
UPSAMPLERS = ("pixelshuffledirect", "pixelshuffle")


@dataclass(frozen=True)
class SRConfig:
    arch: str
    scale: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    mlp_ratio: float = 2.0
    key_dims: tuple[int, ...] | None = None  # AgileIR only: q/k channels per head group
    upsampler: str = "pixelshuffledirect"
    resi_connection: str = "1conv"
    in_chans: int = 3
    img_range: float = 1.0
    # Reproduce the official AgileIR forward, whose attention returns its input (see docs/models.md).
    upstream_compat: bool = False

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHS}")
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler {self.upsampler!r} is not supported; expected one of {UPSAMPLERS}")
        if self.resi_connection not in ("1conv", "3conv"):
            raise ValueError(f"resi_connection {self.resi_connection!r} is not supported")
        if len(self.depths) != len(self.num_heads):
            raise ValueError("depths and num_heads must have one entry per residual group")
        if self.arch == "agileir" and (self.key_dims is None or len(self.key_dims) != len(self.depths)):
            raise ValueError("AgileIR needs key_dims with one entry per residual group")
        for heads in self.num_heads:
            if self.embed_dim % heads:
                raise ValueError(f"embed_dim {self.embed_dim} is not divisible by {heads} heads")

    def replace(self, **changes) -> "SRConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SRConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


def _agileir_light(scale: int) -> SRConfig:
    return SRConfig("agileir", scale, 96, (6, 8, 6), (12, 12, 12), 16, 2.0, (32, 32, 32))


def _agileir_v2(scale: int) -> SRConfig:
    return SRConfig("agileir", scale, 180, (6,) * 6, (6,) * 6, 16, 2.0, (16,) * 6)


def _swinir_light(scale: int) -> SRConfig:
    return SRConfig("swinir", scale, 60, (6, 6, 6, 6), (6, 6, 6, 6), 8, 2.0)


PRESETS: dict[str, SRConfig] = {}
for _s in (2, 3, 4):
    PRESETS[f"agileir-light-x{_s}"] = _agileir_light(_s)
    PRESETS[f"agileir-v2-x{_s}"] = _agileir_v2(_s)
    PRESETS[f"swinir-light-x{_s}"] = _swinir_light(_s)


def preset(name: str) -> SRConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def preset_name(config: SRConfig) -> str | None:
    """The preset a config equals (ignoring upstream_compat), or None."""
    plain = config.replace(upstream_compat=False)
    return next((name for name, p in PRESETS.items() if p == plain), None)
