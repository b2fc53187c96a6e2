"""agileir-infer, `agileir video` and `agileir batch` share one library path (agileir.upscale.upscaler.Upscaler)
and one set of defaults (TilingOptions(), PipelineOptions(), EncodingOptions(), runtime.RunnerSpec)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from agileir.cli import main
from agileir.io.gate import OutputGate
from agileir.io.images import read_image
from agileir.runtime import RunnerSpec, load_runner
from agileir.upscale.memory import parse_size
from agileir.upscale.options import EncodingOptions, PipelineOptions, TilingOptions
from agileir.upscale.tiling import DEFAULT_OVERLAP
from agileir.upscale.upscaler import Upscaler
from conftest import saved_model
from test_models import TINY_SWINIR


class Called(Exception):
    """Raised by a stand-in for a library function once it has recorded its arguments."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("ckpt"), TINY_SWINIR)[1]


def _record(calls: dict, name: str):
    def stand_in(*args, **kwargs):
        calls[name] = args
        raise Called(name)
    return stand_in


def test_the_three_commands_call_one_path_with_one_set_of_defaults(checkpoint, tmp_path, monkeypatch):
    import agileir.upscale.files as files
    import agileir.upscale.video as video

    pytest.importorskip("av")

    calls: dict = {}
    monkeypatch.setattr(files, "upscale_file", _record(calls, "infer"))
    monkeypatch.setattr(files, "upscale_files", _record(calls, "folder"))
    monkeypatch.setattr(video, "upscale_video", _record(calls, "video"))
    monkeypatch.setattr(video, "video_frame_size", lambda path: (24, 32))
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "a.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(b"")  # never opened: the library call is replaced
    CliRunner().invoke(main, ["infer", str(checkpoint), str(image)])
    CliRunner().invoke(main, ["infer", str(checkpoint), str(image.parent)])
    CliRunner().invoke(main, ["video", str(checkpoint), str(clip)])
    upscalers = [calls[name][0] for name in ("infer", "folder", "video")]
    assert [type(u) for u in upscalers] == [Upscaler] * 3
    assert [u.tiling for u in upscalers] == [TilingOptions()] * 3 and TilingOptions() == TilingOptions(None, 16, None)
    assert calls["folder"][2] == PipelineOptions()
    assert calls["video"][3:5] == (EncodingOptions(), PipelineOptions())

    pytest.importorskip("ray.data")
    import agileir.cluster.job as job

    def record_batch(*args, **kwargs):
        calls["batch"], calls["batch_kwargs"] = args, kwargs
        raise Called("batch")

    monkeypatch.setattr(job, "run_batch", record_batch)
    CliRunner().invoke(main, ["batch", str(checkpoint), str(image.parent), str(tmp_path / "out")])
    spec, tiling = calls["batch"][0], calls["batch"][3]
    assert tiling == TilingOptions() and calls["batch_kwargs"]["pipeline"] == PipelineOptions()
    assert spec == RunnerSpec(str(checkpoint), threads=1)  # --backend auto, --device auto, no engine cache


@pytest.mark.parametrize("command", ["infer", "video", "batch"])
def test_every_command_has_the_same_tiling_and_runner_options(command):
    import click

    cmd = main.commands[command]
    ctx = click.Context(cmd)
    params = {p.name: p for p in cmd.params}
    assert params["tile"].get_default(ctx) == "auto" and params["tile_overlap"].get_default(ctx) == DEFAULT_OVERLAP
    assert {"max_memory", "backend", "device", "engine_cache_dir", "preset_name", "upstream_compat"} <= set(params)


def test_batch_actor_output_is_infer_output_bit_for_bit(checkpoint, set5, tmp_path):
    """The Ray tasks and actor of `agileir batch`, run in this process on real images, write the same
    bytes as agileir-infer (the whole image, and auto-tiled under a small budget: tiles of 48 pixels)."""
    from agileir.cluster.actors import ActorSetup, UpscaleActor, decode_task, pack, unpack, write_task
    from agileir.upscale.stages import ImageItem

    for budget in (None, "275M"):
        tiling = TilingOptions.parse("auto", DEFAULT_OVERLAP, budget)
        actor = UpscaleActor(ActorSetup(RunnerSpec(str(checkpoint)), tiling, PipelineOptions()))
        for name in ("birdx4.png", "womanx4.png"):
            src = tmp_path / name
            shutil.copy(set5 / "LR_bicubic" / "X4" / name, src)
            ref = tmp_path / f"ref_{budget}_{name}"
            args = ["infer", str(checkpoint), str(src), "-o", str(ref)] + (["--max-memory", budget] if budget else [])
            r = CliRunner().invoke(main, args)
            assert r.exit_code == 0, r.output
            assert ("memory budget" in r.stderr) == (budget is not None)  # 275M: tiled
            decoded = decode_task(pack(ImageItem(src, tmp_path / "b.png")))
            out = actor({"item": [decoded["item"]]})
            row = {"item": out["item"][0]}
            assert ("memory budget" in "".join(unpack(row).notes)) == (budget is not None)  # in the manifest
            gate = OutputGate([src], overwrite=True)
            gate.claim(tmp_path / "b.png", "image")
            written = unpack(write_task(row, gate))
            assert written.status == "ok", written.error
            assert (tmp_path / "b.png").read_bytes() == ref.read_bytes(), (name, budget)


def test_auto_tiling_under_a_budget_stays_close_to_the_whole_image(checkpoint, set5):
    """The tiles the budget chooses are blended: PSNR against the whole image >= 40 dB on a real image."""
    runner = load_runner(RunnerSpec(str(checkpoint)))
    image = read_image(set5 / "LR_bicubic" / "X4" / "babyx4.png")
    whole = Upscaler(runner, TilingOptions(tile=0)).upscale_image(image).rgb
    small = Upscaler(runner, TilingOptions(max_memory=parse_size("300M")))
    plan = small.plan(*image.rgb.shape[:2])
    assert plan.auto and 0 < plan.tile < 128 and plan.overlap == DEFAULT_OVERLAP  # 128x128: tiles of 96
    tiled = small.upscale_image(image).rgb
    psnr = 10 * np.log10(1.0 / np.mean((tiled.astype(np.float64) - whole) ** 2))
    assert psnr >= 40.0, psnr
