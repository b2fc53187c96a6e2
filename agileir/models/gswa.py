"""Group Shifted Window Attention (GSWA): the one place where windows exist.

The op contract is documented in docs/gswa.md. Everything that runs GSWA -- the PyTorch models, the
standard-ops ONNX decomposition, the ONNX Runtime implementation of the plugin node and the CUDA
kernel -- is tested against :func:`gswa` below.

Shapes: q, k are (B, Ck, H, W), v is (B, Cv, H, W), H and W multiples of ``window``.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

MASK_VALUE = -100.0  # Swin's value for token pairs from different shift regions
DW_KERNEL = 5


def relative_position_index(window: int, device=None) -> torch.Tensor:
    """(N, N) index into a ((2w-1)^2,) bias table, N = window^2, Swin's convention."""
    coords = torch.arange(window, device=device)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    dy = yy[:, None] - yy[None, :] + window - 1
    dx = xx[:, None] - xx[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def shift_regions(size: int, window: int, shift: int, device=None) -> torch.Tensor:
    """Region label (0, 1, 2) of every coordinate along one axis of the *shifted* image.

    Swin slices the shifted axis into [0, size-window), [size-window, size-shift), [size-shift, size):
    tokens from different slices must not attend to each other.
    """
    pos = torch.arange(size, device=device)
    if shift == 0:
        return torch.zeros_like(pos)
    return (pos >= size - window).long() + (pos >= size - shift).long()


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * nW, C, window, window), windows in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // window, window, w // window, window)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, window, window)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = windows.shape[1]
    x = windows.reshape(-1, h // window, w // window, c, window, window)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(-1, c, h, w)


def shift_mask(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(nW, N, N) additive mask built from coordinates for an h x w shifted image (0 or MASK_VALUE)."""
    rows = shift_regions(h, window, shift, device)
    cols = shift_regions(w, window, shift, device)
    labels = (rows[:, None] * 3 + cols[None, :]).to(torch.float32)[None, None]
    labels = window_partition(labels, window).flatten(1)  # (nW, N)
    differs = labels[:, :, None] != labels[:, None, :]
    return differs.to(torch.float32) * MASK_VALUE


@functools.lru_cache(maxsize=64)
def _memo(fn, inference_mode: bool, *args):
    return fn(*args)


def _cached(fn, *args):
    """Coordinate-derived constants are cached in eager mode; while tracing for export they are
    rebuilt from the (symbolic) sizes so that nothing shape-specific is baked into the graph."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return fn(*args)
    # Tensors made under inference_mode cannot be saved for backward, so each mode gets its own entry.
    return _memo(fn, torch.is_inference_mode_enabled(), *args)


def gswa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dw_weight: torch.Tensor | None,
    dw_bias: torch.Tensor | None,
    bias_table: torch.Tensor,
    window: int,
    shift: int,
    scale: float,
) -> torch.Tensor:
    """Reference GSWA for one head group. Returns (B, Cv, H, W) in image layout, un-shifted.

    dw_weight (Ck, 1, 5, 5) / dw_bias (Ck,) are the depthwise conv on q, applied per window with zero
    padding at the window border; pass None to skip it (plain Swin attention). bias_table is this
    group's ((2*window-1)^2,) relative-position bias.
    """
    b, ck, h, w = q.shape
    if h % window or w % window:
        raise ValueError(f"GSWA needs H, W multiples of the window {window}, got {h}x{w}")
    if not 0 <= shift < window:
        raise ValueError(f"shift must be in [0, window), got {shift}")
    if shift:
        q, k, v = (torch.roll(t, shifts=(-shift, -shift), dims=(2, 3)) for t in (q, k, v))

    qw = window_partition(q, window)
    if dw_weight is not None:
        qw = F.conv2d(qw, dw_weight, dw_bias, padding=dw_weight.shape[-1] // 2, groups=ck)
    qt = qw.flatten(2)  # (B*nW, Ck, N)
    kt = window_partition(k, window).flatten(2)
    vt = window_partition(v, window).flatten(2)  # (B*nW, Cv, N)

    n = window * window
    index = _cached(relative_position_index, window, q.device)
    bias = bias_table.reshape(-1)[index.reshape(-1)].reshape(n, n)
    if shift:
        bias = bias + _cached(shift_mask, h, w, window, shift, q.device).to(bias.dtype)
    attn = (qt.transpose(1, 2) @ kt).reshape(b, -1, n, n)
    attn = torch.add(bias, attn, alpha=scale).reshape(-1, n, n)  # one pass for scale and bias
    attn = attn.softmax(dim=-1)
    out = vt @ attn.transpose(1, 2)  # (B*nW, Cv, N)

    out = window_reverse(out.reshape(-1, v.shape[1], window, window), window, h, w)
    if shift:
        out = torch.roll(out, shifts=(shift, shift), dims=(2, 3))
    return out


# The models call GSWA through this indirection so that an exporter can swap in an implementation that
# traces to a single custom ONNX node; everything else always runs the reference above.
_implementation = gswa


def gswa_op(*args, **kwargs) -> torch.Tensor:
    return _implementation(*args, **kwargs)


class use_implementation:
    """Context manager: route every model GSWA call to `fn` (same signature as :func:`gswa`)."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        global _implementation
        self.previous, _implementation = _implementation, self.fn
        return self

    def __exit__(self, *exc):
        global _implementation
        _implementation = self.previous
        return False
