"""`agileir batch` on a local Ray instance: same bytes as agileir-infer, a corrupt file reported, resume."""
import hashlib
import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from agileir.io.gate import OutputGate
from agileir.models import build_model, save_safetensors
from agileir.cluster.inputs import plan_outputs, resolve_inputs, source_files
from test_models import TINY_SWINIR



def _need_ray():
    pytest.importorskip("ray.data", reason="agileir batch needs ray[data] (pip install 'agileir[batch]')")


@pytest.fixture(scope="module")
def job(tmp_path_factory, set5):
    root = tmp_path_factory.mktemp("batch")
    torch.manual_seed(0)
    save_safetensors(build_model(TINY_SWINIR), root / "tiny.safetensors")
    src = root / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(20, 24), (17, 13), (32, 32)]):
        PILImage.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(src / f"img{i}.png")
    (src / "img3.png").write_bytes((set5 / "LR_bicubic" / "X4" / "birdx4.png").read_bytes())  # real images too
    (src / "img4.png").write_bytes((set5 / "LR_bicubic" / "X4" / "womanx4.png").read_bytes())
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    return root


def _agileir(*args):
    return subprocess.run([sys.executable, "-m", "agileir", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_batch_matches_infer_and_reports_the_corrupt_file(job):
    _need_ray()
    good = job / "good"
    good.mkdir()
    for p in sorted((job / "in").glob("img*.png")):
        (good / p.name).write_bytes(p.read_bytes())
    ref = _agileir("infer", job / "tiny.safetensors", good, "-o", job / "ref")
    assert ref.returncode == 0, ref.stderr

    out = job / "out"
    run = _agileir("batch", job / "tiny.safetensors", job / "in", out, "--num-cpus", "2")
    assert run.returncode == 1, run.stderr  # one image failed: exit 1, the others done
    assert "5 upscaled, 0 skipped (already done), 1 failed" in run.stdout
    refs = sorted((job / "ref").glob("*.png"))
    assert len(refs) == 5
    for p in refs:  # bit for bit, the two real Set5 images included
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name
    manifest = json.loads((out / "manifest.json").read_text())
    by_name = {item["input"].rsplit("/", 1)[-1]: item for item in manifest["items"]}
    assert by_name["bad.png"]["status"] == "failed" and "cannot read image" in by_name["bad.png"]["error"]
    assert not (out / "bad_x3.png").exists()
    assert {by_name[f"img{i}.png"]["status"] for i in range(5)} == {"ok"}
    assert all(item["notes"] == [] for item in manifest["items"])  # small images: whole, no tiling note

    assert all(by_name[f"img{i}.png"]["sha256"] == hashlib.sha256((out / f"img{i}_x3.png").read_bytes()).hexdigest()
               for i in range(5))

    # resume: an output matching its recorded sha256 is skipped; a truncated one and one of the right size with
    # other content (a stale file) are redone. Changed outside agileir, they are no longer its own outputs
    # (agileir/io/gate.py): replacing them takes --overwrite, refused before any work without it
    (out / "img1_x3.png").write_bytes((out / "img1_x3.png").read_bytes()[:50])
    (out / "img0_x3.png").write_bytes((out / "img2_x3.png").read_bytes())
    (out / "img2_x3.png").write_bytes((job / "ref" / "img0_x3.png").read_bytes())  # swapped: sizes differ
    stale = (out / "img4_x3.png")
    pixels = np.array(PILImage.open(stale))
    PILImage.fromarray(255 - pixels).save(stale)  # right size, PNG, wrong content
    changed = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = _agileir("batch", job / "tiny.safetensors", job / "in", out, "--num-cpus", "2")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "img0_x3.png" in errors[0], refused.stderr
    assert "not written by agileir" in errors[0] and "--overwrite" in errors[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == changed
    again = _agileir("batch", job / "tiny.safetensors", job / "in", out, "--num-cpus", "2", "--overwrite")
    assert again.returncode == 1 and "4 upscaled, 1 skipped (already done), 1 failed" in again.stdout, again.stdout
    for p in refs:
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name


def test_an_output_that_is_an_input_is_refused_before_any_work(job, tmp_path):
    """`agileir batch MODEL in/ in/` where in/ holds a.png and the user's own a_x3.png: a.png's output would
    replace a_x3.png, so the run is refused (exit 2, one line) and nothing is written, as agileir-infer does."""
    _need_ray()
    d = tmp_path / "in"
    d.mkdir()
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "a.png")
    PILImage.fromarray(np.full((24, 24, 3), 7, np.uint8)).save(d / "a_x3.png")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    run = _agileir("batch", job / "tiny.safetensors", d, d, "--num-cpus", "2")
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1 and "would overwrite the input" in errors[0], run.stderr
    assert "a_x3.png" in errors[0] and "Traceback" not in run.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing written, nothing replaced
    infer = _agileir("infer", job / "tiny.safetensors", d, "-o", d)
    assert infer.returncode == 2 and "would overwrite the input" in infer.stderr  # the same rule


def test_inputs_from_a_list_and_a_glob(job, tmp_path):
    for suffix in (".txt", ".lst", ".list"):  # one list-file rule: the job's inputs and the CLI's output checks
        listing = tmp_path / f"files{suffix}"
        listing.write_text(f"# two images\n{job / 'in' / 'img0.png'}\n\nfile://{job / 'in' / 'img2.png'}\n")
        assert [p.rsplit("/", 1)[-1] for p in resolve_inputs(str(listing))] == ["img0.png", "img2.png"]
        assert [p.name for p in source_files(str(listing))] == [listing.name, "img0.png", "img2.png"]
    assert len(resolve_inputs(str(job / "in" / "img*.png"))) == 5
    with pytest.raises(ValueError, match="would both write"):
        plan_outputs(["a/x.png", "b/x.png"], tmp_path, 4, OutputGate())
    # the naming rule of agileir-infer's folder runs: a non-PNG sharing a stem keeps its suffix in the name
    assert [p.name for p in plan_outputs(["a/x.png", "b/x.jpg"], tmp_path, 4, OutputGate())] == \
        ["x_x4.png", "x_jpg_x4.png"]


def test_missing_ray_is_one_line_exit_3(job, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; sys.modules['ray.data'] = None; from agileir.cli import main; "
            f"main(['batch', {str(job / 'tiny.safetensors')!r}, {str(job / 'in')!r}, {str(tmp_path / 'o')!r}])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip() == "error: agileir batch needs ray[data] (pip install 'agileir[batch]')"


def test_actors_of_one_node_share_its_memory_budget(tmp_path):
    """--actors 4 on one host budgets the host's memory once, not 4 x half of it: each actor plans its tiles
    with budget / (the actors its node holds at once)."""
    from agileir.cluster.session import actors_per_node
    from agileir.upscale.options import TilingOptions
    from agileir.upscale.upscaler import CallableRunner, Upscaler

    assert actors_per_node(4, 1.0, node_cpus=8) == 4  # a local instance: every actor on this host
    assert actors_per_node(4, 1.0, node_cpus=2) == 2  # a node that holds two of them at once
    assert actors_per_node(4, 2.0, node_cpus=16, gpus_per_actor=1, node_gpus=2) == 2
    assert actors_per_node(1, 1.0, node_cpus=64) == 1
    runner = CallableRunner(lambda x: np.repeat(np.repeat(x, 2, 2), 2, 3), scale=2)
    host = 4 * 2**30
    assert Upscaler(runner, TilingOptions(max_memory=host), sharers=4).budget == host // 4
    one, four = Upscaler(runner, TilingOptions(max_memory=host)), Upscaler(runner, TilingOptions(max_memory=host), 4)
    assert one.budget == host and four.plan(2000, 2000).budget == one.plan(2000, 2000).budget // 4


def test_one_failure_policy_and_the_actor_fails_only_the_bad_item(tmp_path):
    """stages.stops_run is the rule of folder runs and batch jobs alike: an unreadable file is skipped (the run
    goes on) unless fail_fast; a model failure ends the run. The actor's step plans and runs same-size images in
    one call and, when a call fails, retries them one by one so only the bad image fails."""
    from agileir.cluster.actors import upscale_items
    from agileir.io.images import ImageError
    from agileir.upscale import stages
    from agileir.upscale.options import PipelineOptions, TilingOptions
    from agileir.upscale.stages import ImageItem
    from agileir.upscale.upscaler import CallableRunner, Upscaler

    opts, fast = PipelineOptions(), PipelineOptions(fail_fast=True)
    unreadable = stages.fail(ImageItem("a.png", tmp_path / "a_x2.png"), stages.DECODE, ImageError("cannot read"), opts)
    assert unreadable.skipped and not stages.stops_run(unreadable) and unreadable.status == "failed"
    assert stages.stops_run(stages.fail(ImageItem("a.png", tmp_path / "a"), stages.DECODE, ImageError("x"), fast))
    model = stages.fail(ImageItem("a.png", tmp_path / "a"), stages.INFER, RuntimeError("nan"), opts)
    assert stages.stops_run(model) and model.error == "RuntimeError: nan"
    full = stages.fail(ImageItem("a.png", tmp_path / "a"), stages.WRITE, OSError(28, "No space left on device"), opts)
    assert stages.stops_run(full) and full.errno == 28

    calls = []

    def model_fn(batch):  # fails on any batch holding an image whose first pixel is 1.0
        calls.append(batch.shape[0])
        if (batch[:, :, 0, 0] == 1.0).any():
            raise RuntimeError("bad pixel")
        return np.repeat(np.repeat(batch, 2, 2), 2, 3)

    for i in range(4):
        pixels = np.full((6, 5, 3), 40 * i, np.uint8)
        pixels[0, 0] = 255 if i == 2 else pixels[0, 0]
        PILImage.fromarray(pixels).save(tmp_path / f"{i}.png")
    items = [stages.decode(ImageItem(tmp_path / f"{i}.png", tmp_path / f"{i}_x2.png")) for i in range(4)]
    upscale_items(Upscaler(CallableRunner(model_fn, 2), TilingOptions()), items, PipelineOptions(batch=4))
    assert calls == [4, 1, 1, 1, 1]  # one call for the four, then one by one
    assert [item.result is not None for item in items] == [True, True, False, True]
    assert items[2].stage == stages.INFER and stages.stops_run(items[2])
