"""agileir.upscale.pipeline (decode -> infer -> encode on threads) and agileir.upscale.files (folder runs on it)."""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from agileir.io.atomic import atomic_path, is_temp_file
from agileir.upscale.files import upscale_files
from agileir.io.images import read_image, write_image
from agileir.upscale.arrays import apply_to_images
from agileir.upscale.options import PipelineOptions as Options, TilingOptions
from agileir.upscale.pipeline import PipelineInterrupted, run_pipeline
from agileir.upscale.upscaler import Upscaler
from conftest import TinyRunner


def _jitter(rng_seed: int, limit: float = 0.004):
    rng = random.Random(rng_seed)
    lock = threading.Lock()

    def sleep():
        with lock:
            t = rng.uniform(0, limit)
        time.sleep(t)
    return sleep


def _no_pipeline_threads():
    return not [t for t in threading.enumerate() if t.name.startswith("agileir-")]


def test_order_kept_with_random_delays():
    d, e = _jitter(1), _jitter(2)
    results = list(run_pipeline(range(40), lambda x: (d(), x)[1], lambda xs: [x * 10 for x in xs], lambda y: (e(), y + 1)[1],
                                Options(decode_workers=3, encode_workers=3, queue_size=3)))
    assert [r.index for r in results] == list(range(40))
    assert [r.item for r in results] == list(range(40))
    assert [r.value for r in results] == [x * 10 + 1 for x in range(40)]
    assert all(r.ok and r.seconds >= 0 and set(r.timings) == {"decode", "infer", "encode"} for r in results)
    assert _no_pipeline_threads()


def test_a_failing_item_is_reported_and_skipped():
    def decode(x):
        if x == 3:
            raise ValueError("cannot read item 3")
        return x

    def infer(xs):
        if xs == [5]:
            raise RuntimeError("boom")
        return xs

    def encode(x):
        if x == 7:
            raise OSError("disk full")
        return x

    pipe = run_pipeline(range(12), decode, infer, encode)
    results = list(pipe)
    assert [r.index for r in results] == list(range(12))
    bad = {r.index: (r.stage, r.error) for r in results if not r.ok}
    assert bad == {3: ("decode", "cannot read item 3"), 5: ("infer", "RuntimeError: boom"), 7: ("encode", "disk full")}
    assert [r.value for r in results if r.ok] == [x for x in range(12) if x not in (3, 5, 7)]
    assert pipe.failed == 3 and pipe.done == 12


def test_fail_fast_stops():
    decoded = []

    def decode(x):
        decoded.append(x)
        if x == 5:
            raise ValueError("bad")
        time.sleep(0.002)
        return x

    pipe = run_pipeline(range(200), decode, lambda xs: xs, lambda x: x, Options(fail_fast=True, queue_size=2))
    results = list(pipe)
    assert [r.ok for r in results] == [True] * 5 + [False]
    assert results[-1].index == 5 and results[-1].error == "bad"
    assert len(decoded) <= 6 + pipe.max_in_flight
    assert _no_pipeline_threads()


@pytest.mark.parametrize("batch", [1, 3])
def test_queue_bound_respected(batch):
    lock = threading.Lock()
    in_flight, peak = [0], [0]

    def decode(x):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        return np.zeros((2, 2))

    pipe = run_pipeline(range(80), decode, lambda xs: xs, lambda x: x,
                        Options(queue_size=3, batch=batch))
    for _ in pipe:
        time.sleep(0.003)  # a slow consumer: the stages fill up and must wait
        with lock:
            in_flight[0] -= 1
    assert pipe.done == 80
    assert peak[0] <= pipe.max_in_flight == 2 * 3 + batch + 2
    assert peak[0] >= 3  # it did run ahead


def test_batching_groups_consecutive_same_size_items_only():
    shapes = [(4, 4)] * 3 + [(4, 6)] * 2 + [(4, 4)] * 5 + [(6, 4)]
    calls = []

    def infer(values):
        calls.append([v.shape for v in values])
        return [v.sum() for v in values]

    results = list(run_pipeline(shapes, np.ones, infer, lambda v: v, Options(batch=4)))
    assert calls == [[(4, 4)] * 3, [(4, 6)] * 2, [(4, 4)] * 4, [(4, 4)], [(6, 4)]]
    assert [r.value for r in results] == [float(np.prod(s)) for s in shapes]


def test_a_failing_batch_fails_only_its_bad_item():
    def infer(values):
        if any(v[0, 0] == 2 for v in values):
            raise RuntimeError("nan")
        return values

    results = list(run_pipeline(range(6), lambda x: np.full((2, 2), x), infer, lambda v: int(v[0, 0]), Options(batch=3)))
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    assert [r.value for r in results if r.ok] == [0, 1, 3, 4, 5]


def test_an_input_iterator_error_is_raised_after_the_items_before_it():
    def items():
        yield from range(3)
        raise OSError("listing failed")

    seen = []
    with pytest.raises(OSError, match="listing failed"):
        for r in run_pipeline(items(), lambda x: x, lambda xs: xs, lambda x: x):
            seen.append(r.index)
    assert seen == [0, 1, 2]


def test_breaking_out_stops_every_thread():
    for r in run_pipeline(range(1000), lambda x: x, lambda xs: xs, lambda x: x):
        if r.index == 4:
            break
    assert _no_pipeline_threads()


def _write_atomically(folder):
    def encode(x):
        with atomic_path(folder / f"{x}.txt") as tmp:
            tmp.write_text("x" * 1000)
            time.sleep(0.01)
        return x
    return encode


def test_sigint_stops_taking_items_and_finishes_those_in_flight(tmp_path):
    pipe = run_pipeline(range(500), lambda x: (time.sleep(0.002), x)[1], lambda xs: xs, _write_atomically(tmp_path),
                        Options(queue_size=2))
    seen = []
    with pytest.raises(PipelineInterrupted) as info:
        for r in pipe:
            seen.append(r.index)
            if r.index == 3:
                os.kill(os.getpid(), signal.SIGINT)
    assert info.value.signum == signal.SIGINT and pipe.interrupted == signal.SIGINT
    assert 4 <= len(seen) <= 4 + pipe.max_in_flight and seen == list(range(len(seen)))
    assert pipe.taken < 500
    files = sorted(tmp_path.iterdir())
    assert not [p for p in files if is_temp_file(p)]
    assert {p.name for p in files} == {f"{i}.txt" for i in seen}  # everything yielded was written, no more
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert _no_pipeline_threads()


def test_second_signal_drops_what_is_in_flight(tmp_path):
    pipe = run_pipeline(range(500), lambda x: x, lambda xs: (time.sleep(0.005), xs)[1], _write_atomically(tmp_path))
    with pytest.raises(KeyboardInterrupt) as info:
        for r in pipe:
            if r.index == 2:
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
    assert not isinstance(info.value, PipelineInterrupted)
    assert pipe.done == 3
    assert not [p for p in tmp_path.iterdir() if is_temp_file(p)]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert _no_pipeline_threads()


# -- folder runs on a real (tiny) model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runner():
    return TinyRunner()


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    sizes = [(12, 10), (12, 10), (12, 10), (9, 13), (12, 10), (12, 10)]
    for i, (h, w) in enumerate(sizes):
        PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / f"{i}.png")
    PILImage.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(src / "6_gray.png")
    (src / "7_broken.png").write_bytes(b"not a png")
    return src


@pytest.mark.parametrize("batch", [1, 3])
def test_folder_run_equals_the_serial_loop(tiny_runner, folder, tmp_path, batch):
    sources = sorted(folder.iterdir())
    serial, piped = tmp_path / "serial", tmp_path / "piped"
    serial.mkdir()
    piped.mkdir()
    for src in sources:
        try:
            image = read_image(src)
        except ValueError:
            continue
        r = apply_to_images(tiny_runner.upscale, [image], tiny_runner.scale, align=tiny_runner.window)[0]
        write_image(serial / src.name, r.rgb, r.alpha, r.bit_depth)
    result = upscale_files(Upscaler(tiny_runner, TilingOptions(tile=0)), {s: piped / s.name for s in sources},
                           Options(batch=batch))
    results = result.items
    assert [r.source for r in results] == sources
    assert [r.ok for r in results] == [True] * 7 + [False]
    assert results[-1].stage == "decode" and "7_broken.png" in results[-1].error and results[-1].skipped
    assert result.written == [piped / s.name for s in sources[:-1]] and result.failed == [results[-1]]
    for src in sources[:-1]:
        a = np.asarray(PILImage.open(serial / src.name)).astype(int)
        b = np.asarray(PILImage.open(piped / src.name)).astype(int)
        assert a.shape == b.shape
        if batch == 1:
            assert (a == b).all(), src.name
        else:
            assert np.abs(a - b).max() <= 1, src.name
    assert not (piped / "7_broken.png").exists()


# -- agileir-infer folder runs on the pipeline -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import bad_inputs as B
    from test_models import TINY_AGILEIR

    return B.checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", TINY_AGILEIR), TINY_AGILEIR.scale


def _infer(*args):
    from click.testing import CliRunner

    from agileir.cli import main

    return CliRunner().invoke(main, ["infer", *map(str, args)])


def test_infer_folder_batch_keeps_order_and_names(tiny_checkpoint, folder, tmp_path):
    ckpt, scale = tiny_checkpoint
    outs = {}
    for batch in (1, 3):
        out = tmp_path / f"out{batch}"
        r = _infer(ckpt, folder, "-o", out, "--batch", batch)
        assert r.exit_code == 1, r.output  # 7_broken.png is skipped and reported
        assert "7 written, 1 failed" in r.stderr and "7_broken.png" in r.stderr
        lines = [x.split(" -> ")[0] for x in r.stdout.splitlines() if " -> " in x]
        assert lines == [p.name for p in sorted(folder.iterdir())][:-1]  # input order
        outs[batch] = out
    names = sorted(p.name for p in outs[1].glob("*.png"))  # and the gate's ledger (tests/test_output_gate.py)
    assert names == sorted(p.name for p in outs[3].glob("*.png")) == sorted(f"{p.stem}_x{scale}.png"
                                                                             for p in folder.iterdir())[:-1]
    for name in names:
        a = np.asarray(PILImage.open(outs[1] / name)).astype(int)
        b = np.asarray(PILImage.open(outs[3] / name)).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_infer_folder_signal_leaves_no_temp(tiny_checkpoint, folder, tmp_path, monkeypatch, sig, code):
    ckpt, _ = tiny_checkpoint
    real_save = PILImage.Image.save
    sent = []

    def save_then_signal(self, fp, *a, **k):
        real_save(self, fp, *a, **k)  # the temporary file exists, not yet renamed
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(PILImage.Image, "save", save_then_signal)
    out = tmp_path / "out"
    r = _infer(ckpt, folder, "-o", out)
    assert r.exit_code == code, r.output
    errs = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errs) == 1 and "Traceback" not in r.output
    assert not [p for p in tmp_path.rglob("*") if is_temp_file(p)]
