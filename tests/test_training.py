import json

import numpy as np
import pytest
import torch
from PIL import Image

from agileir.training.data import PairedPatches
from agileir.quality.imresize import bicubic_degrade
from agileir.training.train import TrainConfig, lr_at, train
from test_models import TINY_AGILEIR


@pytest.fixture
def hr_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "hr"
    d.mkdir()
    for i in range(3):
        yy, xx = np.mgrid[0:64, 0:72]
        img = (127 + 100 * np.sin(xx / (3 + i)) * np.cos(yy / 5)).astype(np.uint8)
        Image.fromarray(np.stack([img, img[::-1], rng.integers(0, 255, img.shape, np.uint8)], 2)).save(d / f"{i}.png")
    return d


def test_pairs_are_aligned(hr_dir):
    data = PairedPatches(hr_dir, 2, 16)
    lr, hr = data.pairs[0]
    assert np.array_equal(lr.permute(1, 2, 0).numpy(), bicubic_degrade(hr.permute(1, 2, 0).numpy(), 2))
    g = torch.Generator().manual_seed(0)
    lr_b, hr_b = data.sample(4, g)
    assert lr_b.shape == (4, 3, 16, 16) and hr_b.shape == (4, 3, 32, 32)
    # every augmented LR crop is the bicubic image of its HR crop up to border effects
    down = torch.nn.functional.avg_pool2d(hr_b, 2)
    assert (down - lr_b)[..., 2:-2, 2:-2].abs().mean() < 0.05


def test_schedule_warms_up_and_anneals():
    cfg = TrainConfig(model={}, train_dir="", val_dir=None, out_dir="", steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)


def test_short_run_resumes_deterministically(hr_dir, tmp_path):
    def run(out, steps):
        cfg = TrainConfig(model=TINY_AGILEIR.to_dict(), train_dir=str(hr_dir), val_dir=None, out_dir=str(out),
                          steps=steps, batch=2, lr_patch=16, warmup=1, save_every=1)
        return train(cfg)

    run(tmp_path / "a", 2)
    run(tmp_path / "a", 3)  # resumes at step 2
    run(tmp_path / "b", 3)
    a = torch.load(tmp_path / "a" / "ema.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "ema.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["steps"] == 3
