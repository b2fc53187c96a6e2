"""The engine's input profile: shapes of the input `lr` (min / opt / max), their text form, and TensorRT-RTX's target
compute capabilities."""
from __future__ import annotations

from dataclasses import dataclass

Shape = tuple[int, int, int, int]
INPUT = "lr"
# TensorRT-RTX's ComputeCapability members by "major minor" digits; Turing (75) must be asked for explicitly
RTX_COMPUTE_CAPABILITIES = ("75", "80", "86", "89", "120", "121")
RTX_DEFAULT_TARGETS = "TensorRT-RTX default (8.0, 8.6, 8.9, 12.0 and later)"


def parse_compute_capabilities(text: str | None) -> tuple[str, ...]:
    """'86,89' or '8.6, 8.9' -> ('86', '89'); '' or None -> () (the flavour's default)."""
    if not text:
        return ()
    caps = []
    for item in text.split(","):
        cc = item.strip().replace(".", "").lower().removeprefix("sm_").removeprefix("sm")
        if cc not in RTX_COMPUTE_CAPABILITIES:
            raise ValueError(f"unknown compute capability {item.strip()!r} (TensorRT-RTX targets: "
                             f"{', '.join(RTX_COMPUTE_CAPABILITIES)})")
        if cc not in caps:
            caps.append(cc)
    return tuple(caps)


def parse_shape(text: str, channels: int = 3) -> Shape:
    """'1x3x256x256' or '256x256' (batch 1) -> (B, C, H, W)."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        dims = ()
    if len(dims) == 2:
        dims = (1, channels) + dims
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(f"a shape must look like 1x3x256x256 or 256x256, got {text!r}")
    return dims[0], dims[1], dims[2], dims[3]


def shape_text(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class ShapeProfile:
    """min / opt / max of the input `lr` (B, 3, H, W). The graph pads to a window multiple itself, so any
    H, W >= 1 is valid; inputs beyond max are tiled by the runner."""

    min: Shape = (1, 3, 1, 1)
    opt: Shape = (1, 3, 256, 256)
    max: Shape = (1, 3, 512, 512)

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            if len(getattr(self, name)) != 4:
                raise ValueError(f"the {name} shape must have 4 dims (B, C, H, W)")
        if not (self.min[1] == self.opt[1] == self.max[1] == 3):
            raise ValueError("the profile's channel dim must be 3 (RGB)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"profile shapes must satisfy min <= opt <= max per dim, got "
                             f"{shape_text(self.min)} / {shape_text(self.opt)} / {shape_text(self.max)}")

    def to_dict(self) -> dict:
        return {"input": INPUT, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


# TensorRT-RTX 1.7 does not build the bundled AgileIR-light's FP16 attention form with a profile beyond 256x256: its
# fused attention (windows as heads, 256 tokens) asks for 36 MB more than any workspace limit it is given (measured
# with 4 and 8 GiB at 384x384 and 512x512). Engines of that form stop at 256x256; larger inputs are tiled.
RTX_ATTENTION_MAX_SIDE = 256


def fitted_profile(profile: ShapeProfile, form: str, flavour: str) -> ShapeProfile:
    """`profile`, its H and W capped at RTX_ATTENTION_MAX_SIDE for a TensorRT-RTX attention-form engine."""
    if form != "attention" or flavour != "rtx":
        return profile

    def capped(shape: Shape) -> Shape:
        return (shape[0], shape[1], min(shape[2], RTX_ATTENTION_MAX_SIDE), min(shape[3], RTX_ATTENTION_MAX_SIDE))
    return ShapeProfile(capped(profile.min), capped(profile.opt), capped(profile.max))
