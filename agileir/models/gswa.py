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

from .gswa_node import MASK_VALUE

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


def window_partition(x: torch.Tensor, window: int, grid: tuple | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B * nW, C, window, window), windows in row-major order. `grid`: x's (B, H, W) when
    the caller has them (see grid_of)."""
    b, h, w = grid or (x.shape[0], x.shape[2], x.shape[3])
    c = x.shape[1]
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


@functools.lru_cache(maxsize=1024)  # small index tensors: a few per head group, none per image size
def _index_memo(fn, inference_mode: bool, *args):
    return fn(*args)


def _cached(fn, *args, memo: Callable = _memo):
    """Coordinate-derived constants are cached in eager mode; while tracing for export they are
    rebuilt from the (symbolic) sizes so that nothing shape-specific is baked into the graph."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return fn(*args)
    # Tensors made under inference_mode cannot be saved for backward, so each mode gets its own entry.
    return memo(fn, torch.is_inference_mode_enabled(), *args)


def size_free_constant(fn, *args):
    """fn(*args) for a value that depends on no input size (window geometry, weights derived from parameters):
    while tracing it is evaluated outside the trace and recorded as one constant, not as the ops that make it
    (the exporter then has hundreds of nodes less per head group to convert and clean)."""
    state = torch._C._get_tracing_state() if torch.jit.is_tracing() else None
    if state is None:
        return fn(*args)
    torch._C._set_tracing_state(None)
    try:
        with torch.no_grad():
            return fn(*args)
    finally:
        torch._C._set_tracing_state(state)


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


def to_windows(x: torch.Tensor, window: int, shift: int, shared: bool = True) -> torch.Tensor:
    """(B, C, H, W) image -> (B * nW, C, window, window): the cyclic shift by -shift, then the partition.
    `shared`: shift with the forward's shared gather indices when there are any (sharing_window_geometry)."""
    grid = grid_of(x) if shared else None
    if shift:
        x = _roll(x, -shift, shared)
    return window_partition(x, window, grid)


def from_windows(windows: torch.Tensor, window: int, shift: int, h: int, w: int, shared: bool = True) -> torch.Tensor:
    """Inverse of :func:`to_windows`: reverse the partition, then undo the shift."""
    x = window_reverse(windows, window, h, w)
    if shift:
        x = _roll(x, shift, shared)
    return x


def _roll(x: torch.Tensor, shift: int, shared: bool) -> torch.Tensor:
    """torch.roll by (shift, shift) over (H, W). Within a shared geometry as two gathers whose indices are
    built once per forward (traced: two Gather nodes per roll instead of Slice/Concat pairs)."""
    if not shared or _geometry is None:
        return torch.roll(x, shifts=(shift, shift), dims=(2, 3))
    h, w = x.shape[-2:]

    def indices():
        return ((torch.arange(h, device=x.device) - shift) % h, (torch.arange(w, device=x.device) - shift) % w)
    rows, cols = _shared(("roll", shift), indices)
    return x.index_select(2, rows).index_select(3, cols)


def window_logit_bias(bias_table: torch.Tensor, spec: WindowSpec, h: int, w: int, shared: bool = True) -> torch.Tensor:
    """Relative-position bias plus shift mask, the additive term of the logits: (N, N) without a shift,
    (1, nW, N, N) with one (per window of an h x w image, broadcast over the batch). `shared`: take the shift mask from the forward's
    shared geometry (see sharing_window_geometry) when there is one."""
    n = spec.window * spec.window
    index = size_free_constant(_index_memo, relative_position_index, torch.is_inference_mode_enabled(), spec.window,
                               bias_table.device)
    bias = bias_table.reshape(-1)[index.reshape(-1)].reshape(n, n)
    if spec.shift:
        def mask():
            return _cached(shift_mask, h, w, spec.window, spec.shift, bias_table.device)[None]
        bias = bias + (_shared(("mask", spec.window, spec.shift), mask) if shared else mask()).to(bias.dtype)
    return bias


def to_tokens(windows: torch.Tensor, batch) -> torch.Tensor:
    """(B*nW, C, w, w) windows -> (B, nW, N, C) tokens, the layout of attention heads (windows as heads)."""
    c, n = windows.shape[1], windows.shape[-1] * windows.shape[-2]
    return windows.reshape(batch, -1, c, n).transpose(2, 3)


def from_tokens(tokens: torch.Tensor, window: int) -> torch.Tensor:
    """Inverse of :func:`to_tokens`."""
    return tokens.transpose(2, 3).reshape(-1, tokens.shape[-1], window, window)


def take_channels(x: torch.Tensor, dim: int, indices) -> torch.Tensor:
    """x's channels `indices` (a range or list of ints) along `dim`, by a gather with constant int32 indices:
    exported, one Gather node, which TensorRT's parser maps to one layer (a Slice or Split costs it tens of
    shape layers)."""
    return x.index_select(dim, _cached(_channel_index, tuple(indices), x.device, memo=_index_memo))


def _channel_index(indices: tuple[int, ...], device) -> torch.Tensor:
    return torch.tensor(indices, dtype=torch.int32, device=device)


def attend_tokens(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, logit_bias: torch.Tensor,
                  scale: float) -> torch.Tensor:
    """Attention inside each window, windows as heads. q, k (B, nW, N, Ck), v (B, nW, N, Cv), logit_bias
    (N, N) or (1, nW, N, N) from :func:`window_logit_bias`; returns (B, nW, N, Cv)."""
    attn = torch.add(logit_bias, q @ k.transpose(-2, -1), alpha=scale)  # one pass for scale and bias
    return attn.softmax(dim=-1) @ v


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
    qw, kw, vw = (to_windows(t, spec.window, spec.shift, shared=False) for t in (q, k, v))
    if dw is not None:
        qw = F.conv2d(qw, dw[0], dw[1], padding=dw[0].shape[-1] // 2, groups=q.shape[1])
    b = q.shape[0]
    out = attend_tokens(to_tokens(qw, b), to_tokens(kw, b), to_tokens(vw, b),
                        window_logit_bias(bias_table, spec, h, w, shared=False), spec.scale)
    out = from_tokens(out, spec.window)
    return from_windows(out, spec.window, spec.shift, h, w, shared=False)


# How the models run GSWA. By default a block runs in window space: one (shifted) partition of its input,
# the head groups' convs and `kernel` (attention inside the windows, same signature as attend_tokens)
# per window, one reverse. With `per_call` set (same signature as gswa), every head
# group calls it in image layout instead: the plugin form traces each call to one custom node.
# equal_head_dims: the kernel needs v as wide as q and k (zero-padded; it returns the padded width).
@dataclass(frozen=True)
class Routing:
    kernel: Callable | None = None
    per_call: Callable | None = None
    equal_head_dims: bool = False

    def attend(self, q, k, v, logit_bias, scale):
        return (self.kernel or attend_tokens)(q, k, v, logit_bias, scale)


_routing = Routing()
_geometry: dict | None = None  # per forward: shift masks and roll indices, see sharing_window_geometry


def routing() -> Routing:
    return _routing


@contextlib.contextmanager
def routed(kernel: Callable | None = None, per_call: Callable | None = None, equal_head_dims: bool = False):
    """Route every model GSWA call: `kernel` for the attention in window space, or `per_call` per head group."""
    global _routing
    previous, _routing = _routing, Routing(kernel, per_call, equal_head_dims)
    try:
        yield
    finally:
        _routing = previous


@contextlib.contextmanager
def sharing_window_geometry():
    """Within one forward every block sees the same padded H x W: build each shift mask and roll index once
    and share it (traced for export: one subgraph for all blocks instead of one per block or head group)."""
    global _geometry
    previous, _geometry = _geometry, {}
    try:
        yield
    finally:
        _geometry = previous


def grid_of(x: torch.Tensor) -> tuple:
    """(B, H, W) of a (B, C, H, W) tensor. Within a shared geometry every block has the same padded size, so
    the first block's values serve all (traced: one Shape subgraph for the whole body, not one per block)."""
    def sizes():
        return x.shape[0], x.shape[2], x.shape[3]
    return _shared(("grid",), sizes)


def _shared(key: tuple, make: Callable):
    if _geometry is None:
        return make()
    if key not in _geometry:
        _geometry[key] = make()
    return _geometry[key]
