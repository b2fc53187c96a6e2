"""Group Shifted Window Attention (GSWA): the one place where windows exist.

The op contract is documented in docs/gswa.md. Everything that runs GSWA -- the PyTorch models, the
standard-ops ONNX decomposition, the ONNX Runtime implementation of the plugin node and the CUDA
kernel -- is tested against :func:`gswa` below.

Shapes: q, k are (B, Ck, H, W), v is (B, Cv, H, W), H and W multiples of ``window``.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class WindowSpec:
    """The window settings of one GSWA call: window side, cyclic shift (0 <= shift < window), logit scale."""

    window: int
    shift: int = 0
    scale: float = 1.0

    def check(self, h: int, w: int) -> None:
        if h % self.window or w % self.window:
            raise ValueError(f"GSWA needs H, W multiples of the window {self.window}, got {h}x{w}")
        if not 0 <= self.shift < self.window:
            raise ValueError(f"shift must be in [0, window), got {self.shift}")


def to_windows(x: torch.Tensor, window: int, shift: int) -> torch.Tensor:
    """(B, C, H, W) image -> (B * nW, C, window, window): the cyclic shift by -shift, then the partition."""
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(2, 3))
    return window_partition(x, window)


def from_windows(windows: torch.Tensor, window: int, shift: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`: reverse the partition, then undo the shift."""
    x = window_reverse(windows, window, h, w)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(2, 3))
    return x


def window_logit_bias(bias_table: torch.Tensor, spec: WindowSpec, h: int, w: int) -> torch.Tensor:
    """Relative-position bias plus shift mask, the additive term of the logits: (1, N, N) without a shift,
    (nW, N, N) with one (per window of an h x w image)."""
    n = spec.window * spec.window
    index = _cached(relative_position_index, spec.window, bias_table.device)
    bias = bias_table.reshape(-1)[index.reshape(-1)].reshape(n, n)
    if spec.shift:
        bias = bias + _shift_mask_shared(h, w, spec.window, spec.shift, bias_table.device).to(bias.dtype)
    return bias


def attend_windows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, logit_bias: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """Attention inside each window. q, k (B*nW, Ck, w, w), v (B*nW, Cv, w, w), logit_bias (N, N) or
    (nW, N, N) from :func:`window_logit_bias`; returns (B*nW, Cv, w, w)."""
    window = q.shape[-1]
    n = window * window
    qt, kt, vt = q.flatten(2), k.flatten(2), v.flatten(2)
    attn = qt.transpose(1, 2) @ kt
    if logit_bias.dim() == 3:
        attn = attn.reshape(-1, logit_bias.shape[0], n, n)
    attn = torch.add(logit_bias, attn, alpha=scale).reshape(-1, n, n)  # one pass for scale and bias
    out = vt @ attn.softmax(dim=-1).transpose(1, 2)  # (B*nW, Cv, N)
    return out.reshape(-1, v.shape[1], window, window)


def gswa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dw: tuple[torch.Tensor, torch.Tensor] | None,
    bias_table: torch.Tensor,
    spec: WindowSpec,
) -> torch.Tensor:
    """Reference GSWA for one head group. Returns (B, Cv, H, W) in image layout, un-shifted.

    dw = (weight (Ck, 1, 5, 5), bias (Ck,)) is the depthwise conv on q, applied per window with zero
    padding at the window border; None skips it (plain Swin attention). bias_table is this group's
    ((2*window-1)^2,) relative-position bias.
    """
    h, w = q.shape[-2:]
    spec.check(h, w)
    qw = to_windows(q, spec.window, spec.shift)
    if dw is not None:
        qw = F.conv2d(qw, dw[0], dw[1], padding=dw[0].shape[-1] // 2, groups=q.shape[1])
    out = attend_windows(qw, to_windows(k, spec.window, spec.shift), to_windows(v, spec.window, spec.shift),
                         window_logit_bias(bias_table, spec, h, w), spec.scale)
    return from_windows(out, spec.window, spec.shift, h, w)


# How the models run GSWA. By default a block runs in window space: one (shifted) partition of its input,
# the head groups' convs and `kernel` (attention inside the windows, same signature as attend_windows plus
# the image batch size) per window, one reverse. With `per_call` set (same signature as gswa), every head
# group calls it in image layout instead: the plugin form traces each call to one custom node.
@dataclass(frozen=True)
class Routing:
    kernel: Callable = None  # type: ignore[assignment]
    per_call: Callable | None = None

    def attend(self, q, k, v, logit_bias, scale, batch):
        if self.kernel is None:
            return attend_windows(q, k, v, logit_bias, scale)
        return self.kernel(q, k, v, logit_bias, scale, batch)


_routing = Routing()
_shift_masks: dict | None = None  # per forward: (window, shift) -> mask, see sharing_window_geometry


def routing() -> Routing:
    return _routing


@contextlib.contextmanager
def routed(kernel: Callable | None = None, per_call: Callable | None = None):
    """Route every model GSWA call: `kernel` for the attention in window space, or `per_call` per head group."""
    global _routing
    previous, _routing = _routing, Routing(kernel, per_call)
    try:
        yield
    finally:
        _routing = previous


@contextlib.contextmanager
def sharing_window_geometry():
    """Within one forward every block sees the same padded H x W: build each shift mask once and share it
    (traced for export: one mask subgraph for all shifted blocks instead of one per head group)."""
    global _shift_masks
    previous, _shift_masks = _shift_masks, {}
    try:
        yield
    finally:
        _shift_masks = previous


def _shift_mask_shared(h, w, window: int, shift: int, device) -> torch.Tensor:
    if _shift_masks is None:
        return _cached(shift_mask, h, w, window, shift, device)
    key = (window, shift)
    if key not in _shift_masks:
        _shift_masks[key] = _cached(shift_mask, h, w, window, shift, device)
    return _shift_masks[key]
