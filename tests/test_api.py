"""The Python API (agileir.api, docs/api.md): the documented examples run as written (the first on the bundled
AgileIR-light x4, as README's), models given by path load once, outputs go through the output gate, and results
agree with the library's own runners."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import agileir
from agileir import api
from agileir.io.gate import OutputConflict
from agileir.io.samples import sample_image
from agileir.models import build_model, save_safetensors
from agileir.quality.metrics import psnr
from agileir.runtime import RunnerSpec, load_runner
from conftest import REPO, noise_video, randomized
from test_models import TINY_AGILEIR

API_PARITY_DB = 60.0  # ONNX Runtime vs PyTorch on the same checkpoint, float outputs
# tiled vs whole image, written uint8: the bundled x4 in tiles of 32 (overlap 16) on a 40x32 photo, measured
# 55.0 dB; the tiny random-weight x2 in tiles of 16 (overlap 8), measured 33.8 dB (random weights reach further)
TILED_PSNR_DB, TINY_TILED_PSNR_DB = 50.0, 30.0


def python_blocks(text: str, section: str) -> list[str]:
    part = text.split(section, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", part, re.S)
    assert blocks, f"no python block under {section!r}"
    return blocks


def docs_examples() -> list[str]:
    return python_blocks(REPO.joinpath("docs", "api.md").read_text(), "## Example")


def write_png(path, width: int, height: int, seed: int) -> None:
    Image.fromarray((sample_image(width, height, seed=seed) * 255).round().astype(np.uint8)).save(path)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """What the examples read: photo.png (40x32), frames/ (two images of different sizes) and model.safetensors
    (a tiny AgileIR x2, for the export example)."""
    torch.manual_seed(0)
    save_safetensors(randomized(build_model(TINY_AGILEIR)), tmp_path / "model.safetensors")
    (tmp_path / "frames").mkdir()
    write_png(tmp_path / "photo.png", 40, 32, 0)
    write_png(tmp_path / "frames" / "f1.png", 24, 20, 1)
    write_png(tmp_path / "frames" / "f2.png", 20, 28, 2)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    api.release()


def run_block(code: str, name: str) -> dict:
    scope: dict = {}
    exec(compile(code, name, "exec"), scope)
    return scope


def test_docs_example_runs_on_the_bundled_x4_model(workdir):
    scope = run_block(docs_examples()[0], "docs/api.md (Example)")
    sr = scope["sr"]
    assert sr.shape == (128, 160, 3) and sr.dtype == np.uint8
    assert np.array_equal(np.asarray(Image.open(workdir / "photo_x4.png")), sr)  # array and file paths agree
    assert [p.as_posix() for p in scope["written"]] == ["frames_x4/f1_x4.png", "frames_x4/f2_x4.png"]
    assert [Image.open(p).size for p in scope["written"]] == [(96, 80), (80, 112)]
    tiled = np.asarray(Image.open(workdir / "photo_tiled_x4.png"))
    assert not np.array_equal(tiled, sr) and psnr(tiled / 255.0, sr / 255.0) >= TILED_PSNR_DB  # tiled, seamless
    assert not scope["runner"].is_active


def test_readme_shows_the_docs_example():
    """README's Python API example is the block tested above, verbatim."""
    readme = python_blocks(REPO.joinpath("README.md").read_text(), "## Python API")[0]
    assert readme == docs_examples()[0], "README.md's Python API example differs from docs/api.md's (copy it)"


def test_docs_export_example_runs_and_loads_the_model_once(workdir):
    scope = run_block(docs_examples()[1], "docs/api.md (Export)")
    assert {p.name for p in (workdir / "out").iterdir()} >= {"model.onnx", "model.plugin.onnx", "export.json"}
    assert scope["info"]["scale"] == 2 and scope["sr"].shape == (64, 80, 3) and scope["sr"].dtype == np.uint8
    sr, tiled = scope["sr"] / 255.0, scope["sr_tiled"] / 255.0
    assert psnr(tiled, sr) >= TINY_TILED_PSNR_DB and not np.array_equal(tiled, sr)
    assert len(api._cache._runners) == 0  # release() released it


def test_a_model_given_by_path_is_loaded_once(workdir):
    api.export("model.safetensors", "out", forms=("standard",))
    first = api.runner_for("out/model.onnx")
    assert api.runner_for("out/model.onnx") is first and first.is_active
    assert api.runner_for(RunnerSpec("out/model.onnx")) is first  # the same spec, spelled as one
    other = api.runner_for("out/model.onnx", backend="onnxruntime-cpu")
    assert other is not first
    stat = os.stat("out/model.onnx")
    os.utime("out/model.onnx", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a rewritten file loads again
    again = api.runner_for("out/model.onnx")
    assert again is not first and not first.is_active  # at most two kept: the least recently used released
    lr = sample_image(12, 10, seed=3)
    assert np.array_equal(api.upscale("out/model.onnx", lr), api.upscale(again, lr))
    with pytest.raises(ValueError, match="apply to a model given by path"):
        api.runner_for(again, device="cpu")


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


def test_api_writes_only_through_the_output_gate(workdir):
    with pytest.raises(ValueError, match="would overwrite the input"):
        api.upscale("model.safetensors", "photo.png", "photo.png")
    with pytest.raises(ValueError, match="would overwrite the input"):
        api.upscale("model.safetensors", "photo.png", "model.safetensors")  # the model is an input too
    (workdir / "mine.png").write_bytes(b"a file agileir did not write")
    with pytest.raises(OutputConflict):
        api.upscale("model.safetensors", "photo.png", "mine.png")
    assert (workdir / "mine.png").read_bytes() == b"a file agileir did not write"
    assert api.upscale("model.safetensors", "photo.png", "mine.png", overwrite=True).name == "mine.png"
    assert Image.open("mine.png").size == (80, 64)
    written = api.upscale("model.safetensors", ["photo.png", "frames/f1.png"], "both")
    assert [p.name for p in written] == ["photo_x2.png", "f1_x2.png"]
    with pytest.raises(ValueError, match="an array is upscaled in memory"):
        api.upscale("model.safetensors", sample_image(8, 8), "x.png")


def test_api_tiling_and_budget_are_the_commands(workdir):
    options = api.tiling_options("auto", None, "2G")
    assert options.tile is None and options.overlap == 16 and options.max_memory == 2 * 2**30
    assert api.tiling_options(32, 4, 10**9).tile == 32
    with pytest.raises(ValueError):
        api.tiling_options("big")
    with pytest.raises(ValueError, match="max-memory"):
        api.upscale("model.safetensors", sample_image(8, 8), max_memory="lots")


def test_api_upscales_a_video(workdir):
    clip = workdir / "clip.mkv"
    noise_video(clip, 3, 16, 12)
    import av

    out = api.upscale("model.safetensors", clip)
    assert out == workdir / "clip_x2.mkv"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (32, 24)
        assert sum(1 for _ in container.decode(stream)) == 3


def test_package_root_exports_the_api_and_stays_light(workdir):
    """`from agileir import upscale, export` are the API functions to call, although agileir.upscale and
    agileir.export are also subpackages (callable ones: agileir/__init__.py)."""
    from agileir import export, load_runner, upscale

    assert load_runner is api.load_runner and agileir.release is api.release
    lr = sample_image(12, 10, seed=4)
    assert np.array_equal(upscale("model.safetensors", lr), api.upscale("model.safetensors", lr))
    assert export("model.safetensors", "out", forms=("standard",))["scale"] == 2
    import agileir.upscale.options as options  # the subpackage is still a package

    assert options.TilingOptions().overlap == 16 and "tile" in str(__import__("inspect").signature(upscale))
    code = ("import sys; from agileir import load_runner, upscale, export, RunnerSpec; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'tensorrt', 'openvino') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    with pytest.raises(AttributeError):
        agileir.no_such_name  # noqa: B018
