"""Building blocks shared by AgileIR and SwinIR (module names follow the official checkpoints)."""
from __future__ import annotations

import torch
import torch.nn as nn


class Conv2dBN(nn.Sequential):
    """Conv (no bias) followed by BatchNorm; keys `c.*` and `bn.*` as in EfficientViT/AgileIR."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, padding: int = 0, groups: int = 1,
                 bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, 1, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of the single conv equal to this Conv+BN with running statistics."""
        bn = self.bn
        gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return self.c.weight * gain[:, None, None, None], bn.bias - bn.running_mean * gain

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        c = self.c
        conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                         groups=c.groups, bias=True)
        weight, bias = self.folded()
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv


def conv_weight_and_bias(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of a plain conv or of a Conv2dBN in eval mode (BN folded on the fly)."""
    if isinstance(module, Conv2dBN):
        return module.folded()
    return module.weight, module.bias


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """SwinIR's patch embedding with patch size 1: only a LayerNorm (key `patch_embed.norm`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        return self.norm(x)


def mirror_indices(size: torch.Tensor | int, padded: torch.Tensor | int, device=None) -> torch.Tensor:
    """Indices 0..padded-1 folded back into [0, size) by reflection (edge not repeated).

    Index arithmetic rather than F.pad(mode='reflect') so that any pad amount works (also larger than
    the image, e.g. a 1x1 input padded to a 16x16 window) and it exports to ONNX as Range/Mod/Gather.
    """
    idx = torch.arange(padded, device=device)
    period = torch.clamp(torch.as_tensor(2 * size - 2, device=device), min=1)
    idx = idx % period
    return torch.where(idx < size, idx, period - idx)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of (B, C, H, W) so H and W become multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph = (h + multiple - 1) // multiple * multiple
    pw = (w + multiple - 1) // multiple * multiple
    x = x.index_select(2, mirror_indices(h, ph, x.device))
    return x.index_select(3, mirror_indices(w, pw, x.device))


def make_upsampler(kind: str, dim: int, scale: int, out_chans: int) -> dict[str, nn.Module]:
    """Tail modules by their official names."""
    if kind == "pixelshuffledirect":
        return {"upsample": nn.Sequential(nn.Conv2d(dim, scale * scale * out_chans, 3, 1, 1),
                                          nn.PixelShuffle(scale))}
    feat = 64
    steps: list[nn.Module] = []
    if scale in (2, 4, 8):
        for _ in range(scale.bit_length() - 1):
            steps += [nn.Conv2d(feat, 4 * feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        steps += [nn.Conv2d(feat, 9 * feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale {scale} is not supported by the pixelshuffle upsampler")
    return {
        "conv_before_upsample": nn.Sequential(nn.Conv2d(dim, feat, 3, 1, 1), nn.LeakyReLU(inplace=True)),
        "upsample": nn.Sequential(*steps),
        "conv_last": nn.Conv2d(feat, out_chans, 3, 1, 1),
    }


def make_resi_conv(kind: str, dim: int) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )
