"""The Python API (agileir.api): README's "Python API" example runs as written, on a tiny model, and its results
agree with the library's own runners."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from agileir import api
from agileir.io.samples import sample_image
from agileir.models import build_model, save_safetensors
from agileir.quality.metrics import psnr
from agileir.runtime import RunnerSpec, load_runner
from conftest import REPO, randomized
from test_models import TINY_AGILEIR

API_PARITY_DB = 60.0  # ONNX Runtime (the README example) vs PyTorch on the same checkpoint, float outputs


def readme_example() -> str:
    section = REPO.joinpath("README.md").read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "README.md's Python API section has no python block"
    return blocks[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """What the README example reads: model.safetensors (a tiny AgileIR x2), photo.png and frames/ (2 images)."""
    torch.manual_seed(0)
    save_safetensors(randomized(build_model(TINY_AGILEIR)), tmp_path / "model.safetensors")
    (tmp_path / "frames").mkdir()
    for i, path in enumerate([tmp_path / "photo.png", tmp_path / "frames" / "f1.png", tmp_path / "frames" / "f2.png"]):
        Image.fromarray((sample_image(24, 20, seed=i) * 255).round().astype(np.uint8)).save(path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_python_api_example_runs(workdir):
    scope: dict = {}
    exec(compile(readme_example(), "README.md (Python API)", "exec"), scope)
    assert {p.name for p in workdir.joinpath("out").iterdir()} >= {"model.onnx", "model.plugin.onnx", "export.json"}
    sr = scope["sr"]
    assert sr.shape == (40, 48, 3) and sr.dtype == np.uint8
    written = np.asarray(Image.open(workdir / "photo_x2.png"))
    assert np.array_equal(written, sr)  # the array path and the file path give the same pixels
    assert [p.name for p in scope["written"]] == ["f1_x2.png", "f2_x2.png"]
    assert all(Image.open(p).size == (48, 40) for p in scope["written"])


def test_api_upscale_matches_the_pytorch_runner(workdir):
    api.export("model.safetensors", "out", forms=("plugin",))
    lr = sample_image(24, 20, seed=5)
    with load_runner(RunnerSpec("model.safetensors", device="cpu")) as reference:
        expected = api.upscale(reference, lr)
    got = api.upscale("out/model.plugin.onnx", lr)
    assert got.dtype == np.float32 and got.shape == (40, 48, 3)
    assert psnr(got, expected) >= API_PARITY_DB
    gray = api.upscale("out/model.plugin.onnx", lr[..., 0])
    assert gray.shape == (40, 48)


def test_api_refuses_to_overwrite_its_input(workdir):
    with pytest.raises(ValueError, match="would overwrite the input"):
        api.upscale("model.safetensors", "photo.png", "photo.png")
