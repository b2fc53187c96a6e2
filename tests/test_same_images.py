"""One folder, three ways in: `agileir-infer`, `agileir batch` (Ray, local instance) and `api.upscale`, each with its
defaults, give the same images (PSNR >= 70 dB between any two), also under a memory budget that forces tiling
and under an engine profile (a runner whose max_shape is what a TensorRT profile imposes). The folder holds one
image wider than 256 px, the default engine profile's side: a run that sized its profile from the default
instead of the largest image (as `agileir batch` once did) tiles that image and fails here."""
from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from agileir import api
from agileir.cli import main
from agileir.runtime import RunnerSpec, engine_profile
from conftest import saved_model
from test_models import TINY_SWINIR

MIN_PSNR = 70.0
BUDGET = "275M"  # forces tiles on these images with TINY_SWINIR (agileir.upscale.memory's estimate)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(PILImage.open(p)) for p in sorted(folder.glob("*_x3.png"))}


def _assert_same(runs: dict[str, Path], names: list[str]) -> None:
    images = {how: _images(folder) for how, folder in runs.items()}
    for how, found in images.items():
        assert sorted(found) == names, (how, sorted(found))
    for (a, ia), (b, ib) in itertools.combinations(images.items(), 2):
        for name in names:
            assert ia[name].shape == ib[name].shape, (a, b, name)
            assert _psnr(ia[name], ib[name]) >= MIN_PSNR, (a, b, name, _psnr(ia[name], ib[name]))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, set5):
    root = tmp_path_factory.mktemp("same")
    checkpoint = saved_model(root, TINY_SWINIR)[1]
    folder = root / "in"
    folder.mkdir()
    for name in ("birdx4.png", "womanx4.png"):
        (folder / name).write_bytes((set5 / "LR_bicubic" / "X4" / name).read_bytes())
    wide = np.asarray(PILImage.open(set5 / "HR" / "baby.png").convert("RGB"))[200:236, 100:400]
    PILImage.fromarray(wide).save(folder / "wide.png")  # 300x36: wider than the default 256-px profile
    return checkpoint, folder, ["birdx4_x3.png", "wide_x3.png", "womanx4_x3.png"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for both batch runs (the command joins it instead of starting its own)."""
    pytest.importorskip("ray.data", reason="agileir batch needs ray[data] (pip install 'agileir[batch]')")
    import ray

    from agileir.cluster.session import init_ray

    started = init_ray(None, 2)
    yield
    if started:
        ray.shutdown()


@pytest.mark.parametrize("budget", [None, BUDGET], ids=["defaults", "memory-budget"])
def test_infer_batch_and_api_give_the_same_images(setup, local_ray, tmp_path, budget):
    checkpoint, folder, names = setup
    extra = ["--max-memory", budget] if budget else []
    infer = CliRunner().invoke(main, ["infer", str(checkpoint), str(folder), "-o", str(tmp_path / "infer"), *extra])
    assert infer.exit_code == 0, infer.output
    assert ("memory budget" in infer.stderr) == (budget is not None)  # the budget did force tiles
    batch = CliRunner().invoke(main, ["batch", str(checkpoint), str(folder), str(tmp_path / "batch"), *extra])
    assert batch.exit_code == 0, batch.output
    assert "3 upscaled, 0 skipped (already done), 0 failed" in batch.stdout
    api.upscale(str(checkpoint), folder, tmp_path / "api", max_memory=budget)
    _assert_same({"infer": tmp_path / "infer", "batch": tmp_path / "batch", "api": tmp_path / "api"}, names)


class Stop(Exception):
    pass


def test_under_an_engine_profile_the_three_paths_agree(setup, tmp_path, monkeypatch):
    """`--backend tensorrt` on an .onnx file builds an engine whose profile is sized by
    agileir.upscale.stages.engine_max_side: the same for infer and batch (the largest image, 300 px -> a 320-px
    profile). A PyTorch runner given that profile's max_shape stands in for the engine (no GPU here)."""
    import agileir.runtime as runtime
    from agileir.cluster.actors import ActorSetup, UpscaleActor, decode_task, pack, unpack, write_task
    from agileir.cluster.job import run_batch
    from agileir.io.gate import OutputGate
    from agileir.upscale.options import PipelineOptions, TilingOptions
    from agileir.upscale.stages import ImageItem

    checkpoint, folder, names = setup
    real_load, asked = runtime.load_runner, {}

    def engine_like(spec, *, max_side=None, batch=1, echo=print, activate=True, **fields):
        asked.setdefault("calls", []).append((max_side, batch, activate))
        if not activate:  # the batch job's probe: enough to know its profile; the job itself runs below
            raise Stop()
        runner = real_load(replace(spec, backend="auto"), echo=lambda _: None)
        limit = engine_profile(max_side, batch).max
        runner.max_shape = (limit[0], limit[2], limit[3])
        return runner

    monkeypatch.setattr(runtime, "load_runner", engine_like)
    r = CliRunner().invoke(main, ["infer", str(checkpoint), str(folder), "-o", str(tmp_path / "infer"),
                                  "--backend", "tensorrt"])
    assert r.exit_code == 0, r.output
    spec = RunnerSpec(str(checkpoint), backend="tensorrt")
    with pytest.raises(Stop):
        run_batch(spec, str(folder), tmp_path / "unused", echo=lambda _: None)
    (infer_side, infer_batch, _), (batch_side, batch_batch, _) = asked["calls"]
    assert infer_side == batch_side == 300 and infer_batch == batch_batch == 1  # one sizing rule

    actor = UpscaleActor(ActorSetup(spec, TilingOptions(), PipelineOptions(), max_side=batch_side))
    assert actor.upscaler.runner.max_shape == (1, 320, 320)
    gate = OutputGate(list(folder.iterdir()))
    for src in sorted(folder.iterdir()):
        dst = tmp_path / "batch" / f"{src.stem}_x3.png"
        gate.claim(dst, "image")
        row = {"item": actor({"item": [decode_task(pack(ImageItem(src, dst)))["item"]]})["item"][0]}
        assert unpack(write_task(row, gate)).ok
    with real_load(spec.artifact, echo=lambda _: None) as runner:
        runner.max_shape = (1, 320, 320)
        api.upscale(runner, folder, tmp_path / "api")
        runs = {"infer": tmp_path / "infer", "batch": tmp_path / "batch", "api": tmp_path / "api"}
        _assert_same(runs, names)

        # the old batch profile (the 256-px default) tiles the wide image: that run would not be the same
        runner.max_shape = (1, 256, 256)
        api.upscale(runner, folder, tmp_path / "default_profile")
    default = _images(tmp_path / "default_profile")["wide_x3.png"]
    assert _psnr(default, _images(tmp_path / "infer")["wide_x3.png"]) < MIN_PSNR
