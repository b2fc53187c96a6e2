"""AgileIR and SwinIR-light: one SwinIR-style trunk, two attention modules.

Module names mirror the official repositories (XcloudFance/AgileIR, JingyunLiang/SwinIR) so that their
state dicts load without renaming. Features travel through the transformer body channels-last
(B, H, W, C) so LayerNorm and the MLP act on the last axis; convolutions and GSWA use NCHW.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import SRConfig
from .gswa import (WindowSpec, from_tokens, from_windows, grid_of, routing, sharing_window_geometry,
                   size_free_constant, take_channels, to_tokens, to_windows, window_logit_bias)
from .layers import (Conv2dBN, Mlp, PatchEmbed, conv_weight_and_bias, make_resi_conv, make_upsampler,
                     pad_to_multiple)

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class CascadedGroupAttention(nn.Module):
    """EfficientViT's cascaded groups: group i sees its channel chunk plus group i-1's output."""

    def __init__(self, dim: int, key_dim: int, heads: int):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, dim // heads
        group_in = dim // heads
        self.qkvs = nn.ModuleList(Conv2dBN(group_in, 2 * key_dim + self.value_dim) for _ in range(heads))
        self.dws = nn.ModuleList(Conv2dBN(key_dim, key_dim, 5, 2, groups=key_dim) for _ in range(heads))
        self.proj = nn.Sequential(nn.ReLU(), Conv2dBN(self.value_dim * heads, dim, bn_weight_init=0))

    def train(self, mode: bool = True):
        super().train(mode)
        # The depthwise conv runs per window with folded weights, so its BN is an affine map on running
        # statistics even while training (as when GSWA runs it in image layout).
        for dw in self.dws:
            if isinstance(dw, Conv2dBN):
                dw.bn.eval()
        return self

    # Two plain methods, no forward: the attention module calls one of them, so in either layout the convs
    # trace under the attention's scope with the same node names (INT8 Q/DQ is transplanted between forms by name).
    def image_layout(self, x: torch.Tensor, attend: Callable) -> torch.Tensor:
        """Image layout: x (B, C, H, W); attend(i, q, k, v) -> group i's output (B, Cv, H, W)."""
        cv = self.value_dim
        outs: list[torch.Tensor] = []
        for i in range(self.heads):
            chunk = take_channels(x, 1, range(i * cv, (i + 1) * cv))  # a gather: a split costs TensorRT shape layers
            feat = chunk if i == 0 else chunk + outs[-1]
            q, k, v = self.qkvs[i](feat).split([self.key_dim, self.key_dim, self.value_dim], dim=1)
            outs.append(attend(i, q, k, v))
        return self.proj(torch.cat(outs, dim=1))

    def windowed(self, windows: torch.Tensor, attend: Callable, batch, equal_head_dims: bool,
                 scale: float) -> torch.Tensor:
        """Window space: windows (B*nW, C, w, w) -> (B*nW, C, w, w); attend(i, q, k, v) takes and returns tokens
        (B, nW, N, D). The convs are pointwise (the depthwise one pads at the window border, as GSWA does), so
        the cascade runs on windows; with equal_head_dims q, k and v are zero-padded to one width. q comes out
        multiplied by the logit scale (folded into the depthwise conv)."""
        ck, cv, window = self.key_dim, self.value_dim, windows.shape[-1]
        width = max(ck, cv) if equal_head_dims else None
        outs: list[torch.Tensor] = []
        for i in range(self.heads):
            chunk = take_channels(windows, 1, range(i * cv, (i + 1) * cv))
            feat = chunk if i == 0 else chunk + outs[-1]
            packed, parts = self.projected(i, feat, width, scale)
            tokens = to_tokens(packed, batch)
            out = attend(i, *(take_channels(tokens, 3, part) for part in parts))
            outs.append(from_tokens(out if out.shape[-1] == cv else take_channels(out, 3, range(cv)), window))
        return self.proj(torch.cat(outs, dim=1))

    def projected(self, i: int, feat: torch.Tensor, width: int | None, scale: float):
        """Group i's windows through its qkv conv and one depthwise conv over all channels (q's taps times
        `scale`, identity taps on k and v); returns them and the channel indices of q, k and v in them.

        The qkv conv is the module itself, so every form has the same conv node (INT8 ranges and Q/DQ match
        by node name). With a `width`, each of q, k, v is zero-padded to it: the depthwise conv then writes
        a zero channel after each channel (channel multiplier 2), which the indices repeat as padding."""
        qkv = self.qkvs[i](feat)
        ck, cv = self.key_dim, self.value_dim
        weight, bias = size_free_constant(self._packed_dw, i, width, scale)
        taps = weight.shape[-1]
        starts, sizes = (0, ck, 2 * ck), (ck, ck, cv)
        if width is None:
            parts = [range(start, start + size) for start, size in zip(starts, sizes)]
            return F.conv2d(qkv, weight, bias, padding=taps // 2, groups=len(weight)), parts
        parts = [[2 * c for c in range(start, start + size)] + [1] * (width - size)
                 for start, size in zip(starts, sizes)]
        return F.conv2d(qkv, weight, bias, padding=taps // 2, groups=2 * ck + cv), parts

    def _packed_dw(self, i: int, width: int | None, scale: float):
        """projected()'s depthwise (weight, bias) over q, k and v (interleaved with zero channels with a width)."""
        ck, cv = self.key_dim, self.value_dim
        dw_weight, dw_bias = conv_weight_and_bias(self.dws[i])
        taps = dw_weight.shape[-1]
        weight = dw_weight.new_zeros(2 * ck + cv, 1, taps, taps)
        weight[:, :, taps // 2, taps // 2] = 1.0  # k and v pass through
        weight = torch.cat([dw_weight * scale, weight[ck:]])
        bias = torch.cat([dw_bias * scale, dw_bias.new_zeros(ck + cv)])
        if width is None:
            return weight, bias
        return (torch.stack([weight, torch.zeros_like(weight)], dim=1).flatten(0, 1),
                torch.stack([bias, torch.zeros_like(bias)], dim=1).flatten())


class ShiftedGroupAttention(nn.Module):
    """AgileIR's attention (upstream name EfficientShiftingWindowAttention): GSWA per head group.

    The whole cascade runs in window space (one shifted partition and one reverse per block; the depthwise
    conv on windows is GSWA's zero padding at window borders) unless a per-call GSWA is routed in."""

    def __init__(self, dim: int, key_dim: int, window: int, heads: int, upstream_compat: bool = False):
        super().__init__()
        self.window, self.heads, self.upstream_compat = window, heads, upstream_compat
        self.scale = key_dim ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.groupatt = CascadedGroupAttention(dim, key_dim, heads)

    def forward(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        if self.upstream_compat:
            return x  # the official forward computes the attention and returns its input
        g, route, table = self.groupatt, routing(), self.relative_position_bias_table
        spec = WindowSpec(self.window, shift, self.scale)
        x = x.permute(0, 3, 1, 2)
        b, h, w = grid_of(x)
        if route.per_call is not None:
            def per_call(i, q, k, v):
                return route.per_call(q, k, v, conv_weight_and_bias(g.dws[i]), table[:, i], spec)
            return g.image_layout(x, per_call).permute(0, 2, 3, 1)

        def attend(i, q, k, v):  # q arrives scaled
            return route.attend(q, k, v, window_logit_bias(table[:, i], spec, h, w), 1.0)
        y = g.windowed(to_windows(x, self.window, shift), attend, b, route.equal_head_dims, self.scale)
        return from_windows(y, self.window, shift, h, w).permute(0, 2, 3, 1)


class WindowAttention(nn.Module):
    """SwinIR's (shifted) window multi-head self-attention, heads computed by the same GSWA op."""

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.window, self.heads = window, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, shift: int) -> torch.Tensor:
        route, table = routing(), self.relative_position_bias_table
        spec = WindowSpec(self.window, shift, self.scale)
        dim = x.shape[-1]
        hd = dim // self.heads

        def heads_of(t: torch.Tensor, axis: int, i: int) -> list[torch.Tensor]:  # head i of q, k, v along `axis`
            return [take_channels(t, axis, range(j * dim + i * hd, j * dim + (i + 1) * hd)) for j in range(3)]
        if route.per_call is not None:
            qkv = self.qkv(x).permute(0, 3, 1, 2)
            outs = [route.per_call(*heads_of(qkv, 1, i), None, table[:, i], spec) for i in range(self.heads)]
            return self.proj(torch.cat(outs, dim=1).permute(0, 2, 3, 1))
        # window space: q times the logit scale, once per block (the Linear stays itself: INT8 matches it by name)
        gain = torch.cat([torch.full((dim,), self.scale), torch.ones(2 * dim)]).to(x)
        qkv = (self.qkv(x) * gain).permute(0, 3, 1, 2)
        b, h, w = grid_of(qkv)
        tokens = to_tokens(to_windows(qkv, self.window, shift), b)  # (B, nW, N, 3C)
        outs = [route.attend(*heads_of(tokens, 3, i), window_logit_bias(table[:, i], spec, h, w), 1.0)
                for i in range(self.heads)]
        y = from_windows(from_tokens(torch.cat(outs, dim=-1), self.window), self.window, shift, h, w)
        return self.proj(y.permute(0, 2, 3, 1))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, attn: nn.Module, shift: int, mlp_ratio: float):
        super().__init__()
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = x + self.attn(self.norm1(x), self.shift)
        return x + self.mlp(self.norm2(x))


class BlockSequence(nn.Module):
    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class ResidualGroup(nn.Module):
    """SwinIR's RSTB: a sequence of transformer blocks, a conv, and a skip connection."""

    def __init__(self, config: SRConfig, index: int):
        super().__init__()
        dim, window = config.embed_dim, config.window_size
        heads = config.num_heads[index]
        blocks = []
        for j in range(config.depths[index]):
            if config.arch == "agileir":
                attn = ShiftedGroupAttention(dim, config.key_dims[index], window, heads, config.upstream_compat)
            else:
                attn = WindowAttention(dim, window, heads)
            blocks.append(TransformerBlock(dim, attn, 0 if j % 2 == 0 else window // 2, config.mlp_ratio))
        self.residual_group = BlockSequence(blocks)
        self.conv = make_resi_conv(config.resi_connection, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        y = self.residual_group(x).permute(0, 3, 1, 2)
        return self.conv(y).permute(0, 2, 3, 1) + x


class SRTransformer(nn.Module):
    """Image super-resolution network; input (B, C, H, W) on [0, 1], any H and W."""

    def __init__(self, config: SRConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        mean = RGB_MEAN if config.in_chans == 3 else (0.0,) * config.in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(config.in_chans, dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(dim)
        self.layers = nn.ModuleList(ResidualGroup(config, i) for i in range(len(config.depths)))
        self.norm = nn.LayerNorm(dim)
        self.conv_after_body = make_resi_conv(config.resi_connection, dim)
        for name, module in make_upsampler(config.upsampler, dim, config.scale, config.in_chans).items():
            self.add_module(name, module)
        self.apply(_init_weights)

    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def window_size(self) -> int:
        return self.config.window_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x.permute(0, 2, 3, 1))
        for layer in self.layers:
            t = layer(t)
        return self.norm(t).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.config.window_size)
        x = (x - self.mean) * self.config.img_range
        feat = self.conv_first(x)
        with sharing_window_geometry():
            x = self.conv_after_body(self.forward_features(feat)) + feat
        if self.config.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.upsample(x)
        x = x / self.config.img_range + self.mean
        return x[..., : h * self.config.scale, : w * self.config.scale]

    @torch.no_grad()
    def fuse(self) -> "SRTransformer":
        """Fold every Conv+BN into one conv (inference only; puts the model in eval mode)."""
        self.eval()
        for module in list(self.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, Conv2dBN):
                    setattr(module, name, child.fuse())
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_model(config: SRConfig) -> SRTransformer:
    return SRTransformer(config)
