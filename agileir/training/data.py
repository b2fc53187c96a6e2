"""Training pairs: HR images degraded once with MATLAB-exact bicubic, then aligned random crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..io.images import list_images, read_image, to_uint8
from ..quality.imresize import bicubic_degrade, modcrop


class PairedPatches:
    """All (LR, HR) training pairs in memory as uint8 tensors; `sample` draws augmented crops."""

    def __init__(self, hr_dir: str | Path, scale: int, lr_patch: int):
        self.scale, self.lr_patch = scale, lr_patch
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        paths = list_images(hr_dir)
        for path in tqdm(paths, desc=f"degrading {Path(hr_dir).name} x{scale}", leave=False):
            hr = modcrop(to_uint8(read_image(path).to_rgb()), scale)
            if min(hr.shape[:2]) < lr_patch * scale:
                continue
            lr = bicubic_degrade(hr, scale)
            self.pairs.append((torch.from_numpy(lr).permute(2, 0, 1).contiguous(),
                               torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1).contiguous()))
        if not self.pairs:
            raise ValueError(f"no training image in {hr_dir} is at least {lr_patch * scale}px on each side")

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        s, p = self.scale, self.lr_patch
        lrs, hrs = [], []
        for _ in range(batch):
            lr, hr = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=generator))]
            y = int(torch.randint(lr.shape[1] - p + 1, (1,), generator=generator))
            x = int(torch.randint(lr.shape[2] - p + 1, (1,), generator=generator))
            lr_crop = lr[:, y:y + p, x:x + p]
            hr_crop = hr[:, y * s:(y + p) * s, x * s:(x + p) * s]
            flip, rot = torch.randint(2, (2,), generator=generator).tolist()
            k = rot + 2 * int(torch.randint(2, (1,), generator=generator))
            if flip:
                lr_crop, hr_crop = lr_crop.flip(-1), hr_crop.flip(-1)
            lr_crop, hr_crop = lr_crop.rot90(k, (1, 2)), hr_crop.rot90(k, (1, 2))
            lrs.append(lr_crop)
            hrs.append(hr_crop)
        return torch.stack(lrs).float() / 255.0, torch.stack(hrs).float() / 255.0
