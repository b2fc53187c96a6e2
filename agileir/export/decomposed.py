"""GSWA as standard ONNX ops, written for a small graph (tested against the reference op).

Within one forward pass every GSWA call sees the same padded H x W, so the window bookkeeping -- the
cyclic-shift gather indices, the shift mask and the reshape sizes -- is built once, from the first
call's (dynamic) shape, and shared by all later calls. Traced for export, that becomes one small
subgraph feeding every attention instead of one copy per head group, and nothing in it depends on a
concrete image size.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.gswa import relative_position_index, shift_mask, use_implementation


@dataclass
class _Geometry:
    rows: torch.Tensor | None  # gather index that applies the cyclic shift along H
    cols: torch.Tensor | None
    rows_back: torch.Tensor | None  # and undoes it
    cols_back: torch.Tensor | None
    mask: torch.Tensor | None  # (B*nW, N, N) additive shift mask
    sizes: tuple  # (B, H/window, W/window), traced values when exporting


class WindowBook:
    """Per-forward cache of the window geometry, keyed by (window, shift)."""

    def __init__(self):
        self._geometry: dict[tuple[int, int], _Geometry] = {}
        self._index: dict[int, torch.Tensor] = {}

    def geometry(self, x: torch.Tensor, window: int, shift: int) -> _Geometry:
        key = (window, shift)
        if key not in self._geometry:
            b, _, h, w = x.shape
            sizes = (b, h // window, w // window)
            if shift:
                rows = (torch.arange(h, device=x.device) + shift) % h
                cols = (torch.arange(w, device=x.device) + shift) % w
                rows_back = (torch.arange(h, device=x.device) + (h - shift)) % h
                cols_back = (torch.arange(w, device=x.device) + (w - shift)) % w
                mask = shift_mask(h, w, window, shift, x.device).repeat(b, 1, 1)
                self._geometry[key] = _Geometry(rows, cols, rows_back, cols_back, mask, sizes)
            else:
                self._geometry[key] = _Geometry(None, None, None, None, None, sizes)
        return self._geometry[key]

    def relative_index(self, window: int, device) -> torch.Tensor:
        if window not in self._index:
            self._index[window] = relative_position_index(window, device).reshape(-1)
        return self._index[window]


_book: WindowBook | None = None


def decomposed_gswa(q, k, v, dw_weight, dw_bias, bias_table, window, shift, scale):
    """Same contract as agileir.models.gswa.gswa; call inside `sharing_window_geometry()`."""
    book = _book if _book is not None else WindowBook()
    ck, cv = q.shape[1], v.shape[1]
    c, n = 2 * ck + cv, window * window
    x = torch.cat([q, k, v], dim=1)  # one partition for all three (the model's Split/Concat folds away)
    geo = book.geometry(x, window, shift)
    b, nh, nw = geo.sizes
    if shift:
        x = x.index_select(2, geo.rows).index_select(3, geo.cols)
    x = x.reshape(b, c, nh, window, nw, window).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, window, window)
    qw, kw, vw = x.split([ck, ck, cv], dim=1)
    if dw_weight is not None:  # scale folded into the conv: a constant at export time
        qw = F.conv2d(qw, dw_weight * scale, dw_bias * scale, padding=dw_weight.shape[-1] // 2, groups=ck)
    else:
        qw = qw * scale
    attn = qw.reshape(-1, ck, n).transpose(1, 2) @ kw.reshape(-1, ck, n)  # (B*nW, N, N)
    attn = attn + bias_table.reshape(-1)[book.relative_index(window, x.device)].reshape(n, n)
    if shift:
        attn = attn + geo.mask
    out = vw.reshape(-1, cv, n) @ attn.softmax(dim=-1).transpose(1, 2)  # (B*nW, Cv, N)
    out = out.reshape(b, nh, nw, cv, window, window).permute(0, 3, 1, 4, 2, 5)
    out = out.reshape(b, cv, nh * window, nw * window)
    if shift:
        out = out.index_select(2, geo.rows_back).index_select(3, geo.cols_back)
    return out


@contextlib.contextmanager
def sharing_window_geometry():
    """Route model GSWA calls to the decomposition, sharing geometry for the duration (one forward)."""
    global _book
    previous, _book = _book, WindowBook()
    try:
        with use_implementation(decomposed_gswa):
            yield
    finally:
        _book = previous
