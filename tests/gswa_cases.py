"""Random GSWA test cases and their reference outputs, shared by the kernel tests (GPU, CPU emulation) and the
benchmark. Imports torch lazily."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOLERANCE = {"f32": 1e-4, "f16": 2e-3}  # max abs error vs agileir.models.gswa.gswa


@dataclass
class GswaCase:
    dtype: str  # "f32" | "f16"
    B: int
    H: int
    W: int
    key_dim: int
    v_dim: int
    window: int
    shift: int
    with_dw: bool
    scale: float
    qkv: Any  # torch float32 (B, 2*key_dim + v_dim, H, W), already rounded through fp16 for "f16"
    dw_weight: Any  # torch float32 (key_dim, 1, 5, 5)
    dw_bias: Any  # torch float32 (key_dim,)
    bias_table: Any  # torch float32 ((2w-1)^2,)
    reference: Any  # torch float32 (B, v_dim, H, W)

    @property
    def C_total(self) -> int:
        return 2 * self.key_dim + self.v_dim

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.dtype]

    def qkv_numpy(self):
        """qkv as the kernel reads it: float32 or float16 NCHW, C-contiguous."""
        import numpy as np

        arr = self.qkv.contiguous().numpy()
        return arr.astype(np.float16) if self.dtype == "f16" else arr

    def out_dtype(self):
        import numpy as np

        return np.float16 if self.dtype == "f16" else np.float32


def make_case(
    dtype: str, B: int, H: int, W: int, key_dim: int, v_dim: int, window: int, shift: int,
    with_dw: bool = True, seed: int = 0, scale: float | None = None,
) -> GswaCase:
    import torch

    from agileir.models.gswa import WindowSpec, gswa
    from agileir.plugins.launch import dtype_tag

    tag = dtype_tag(dtype)
    g = torch.Generator().manual_seed(seed)
    c_total = 2 * key_dim + v_dim
    qkv = torch.randn(B, c_total, H, W, generator=g) * 0.5
    if tag == "f16":
        qkv = qkv.half().float()
    dw_weight = torch.randn(key_dim, 1, 5, 5, generator=g) * 0.2
    dw_bias = torch.randn(key_dim, generator=g) * 0.1
    bias_table = torch.randn((2 * window - 1) ** 2, generator=g) * 0.5
    scale = key_dim**-0.5 if scale is None else scale
    q, k, v = qkv.split([key_dim, key_dim, v_dim], dim=1)
    with torch.no_grad():
        ref = gswa(q, k, v, (dw_weight, dw_bias) if with_dw else None, bias_table, WindowSpec(window, shift, scale))
    return GswaCase(tag, B, H, W, key_dim, v_dim, window, shift, with_dw, scale, qkv, dw_weight, dw_bias, bias_table, ref)
