"""The bad-input corpus (issue 14): every command, every bad input -> the promised behaviour.

Promise (docs/reliability.md): exit code from the one table, exactly one `error:` line on stderr, no
traceback, no partial or temporary file, every input unchanged (hashed before and after)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import bad_inputs as B
from agileir.cli import main
from agileir.io.gate import LEDGER
from conftest import BENCHMARKS
from test_models import TINY_AGILEIR

SCALE = TINY_AGILEIR.scale


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    good = B.checkpoint(d / "tiny.safetensors", TINY_AGILEIR)
    marker = d / "code_ran"
    return {"dir": d, "good": good, "marker": marker,
            "nan": B.nan_checkpoint(d / "nan.safetensors", TINY_AGILEIR),
            "pickle_code": B.pickle_with_code(d / "code.pth", marker),
            "raw_pickle": B.raw_pickle_with_code(d / "raw.pt", marker),
            "trunc_st": B.truncated(d / "trunc.safetensors", good),
            "random_st": B.random_bytes(d / "random.safetensors"),
            "random_onnx": B.random_bytes(d / "random.onnx"),
            "forged_onnx": B.forged_onnx(d / "forged.onnx", 4)}


def run(args, tmp=None):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(r, code, root=None, before=None, contains=None):
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == code, r.output
    assert len(errs) == 1, r.stderr
    assert "Traceback" not in r.output and ".agileir-" not in r.output, r.output
    if contains:
        assert contains in errs[0], errs[0]
    if root is not None:
        assert not B.temp_files(root), B.temp_files(root)
    if before is not None:
        assert B.snapshot(*{p.parent for p in before} if False else before) == before


def unchanged(before):
    for p, h in before.items():
        assert p.exists() and B.sha(p) == h, f"input changed: {p}"


# -- bad images: one line, exit 2, no output -----------------------------------------------------------
BAD_IMAGES = {"corrupt": B.corrupt_png, "truncated": B.truncated_png, "zero-byte": B.zero_byte}


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_image_file(models, tmp_path, kind):
    src = BAD_IMAGES[kind](tmp_path / "bad.png")
    before = B.snapshot(src, models["good"])
    r = run(["infer", models["good"], src, "-o", tmp_path / "out" / "o.png"])
    assert_error(r, 2, tmp_path, contains="bad.png")
    assert not (tmp_path / "out").exists()  # no empty output folder either
    unchanged(before)


# -- unusual but valid images: processed, with a word where precision is lost --------------------------
@pytest.mark.parametrize("kind", ["48-bit", "palette", "rgba", "exif-rotated", "1x1", "gray"])
def test_unusual_images_are_processed(models, tmp_path, kind):
    make = {"48-bit": B.png48, "palette": B.palette_png, "rgba": lambda p: B.good_png(p, mode="RGBA"),
            "exif-rotated": lambda p: B.exif_rotated_jpeg(p.with_suffix(".jpg")), "1x1": B.one_pixel,
            "gray": lambda p: B.good_png(p, mode="L")}[kind]
    src = make(tmp_path / "in.png")
    before = B.snapshot(src)
    out = tmp_path / "o.png"
    r = run(["infer", models["good"], src, "-o", out])
    assert r.exit_code == 0, r.output
    w, h = Image.open(src).size
    if kind == "exif-rotated":
        w, h = h, w  # orientation applied
    assert Image.open(out).size == (w * SCALE, h * SCALE)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert not warnings, r.stderr  # 48-bit: read and written with 16 bits (pypng)
    if kind == "48-bit":
        import png

        assert png.Reader(filename=str(out)).read()[3]["bitdepth"] == 16
    unchanged(before)


# -- bad models: every command that loads one ----------------------------------------------------------
@pytest.mark.parametrize("model", ["pickle_code", "raw_pickle", "trunc_st", "random_st", "random_onnx"])
@pytest.mark.parametrize("command", ["infer", "eval", "info", "bench"])
def test_bad_model_files(models, tmp_path, model, command):
    if command == "eval" and model == "random_onnx":
        pytest.skip("eval takes checkpoints")
    src = B.good_png(tmp_path / "in.png")
    ds = B.dataset(tmp_path / "ds", SCALE)
    path = models[model]
    args = {"infer": ["infer", path, src, "-o", tmp_path / "o.png"], "info": ["info", path],
            "eval": ["eval", path, "--dataset", ds, "--json", tmp_path / "r.json"],
            "bench": ["bench", path, "--sizes", "8", "--runs", "1", "--warmup", "0"]}[command]
    before = B.snapshot(path, src, ds)
    r = run(args)
    assert_error(r, 2, tmp_path)
    assert not models["marker"].exists(), "unpickling ran code"
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "r.json").exists()
    unchanged(before)


@pytest.mark.parametrize("command", ["infer", "eval", "validate", "bench", "infer-onnx-runtime"])
def test_nan_weights_are_an_error_everywhere(models, tmp_path, command):
    src = B.good_png(tmp_path / "in.png")
    ds = B.dataset(tmp_path / "ds", SCALE)
    nan = models["nan"]
    args = {"infer": ["infer", nan, src, "-o", tmp_path / "o.png"],
            "infer-onnx-runtime": ["infer", nan, src, "-o", tmp_path / "o.png", "--backend", "onnxruntime-cpu"],
            "eval": ["eval", nan, "--dataset", ds, "--json", tmp_path / "r.json"],
            "validate": ["validate", nan, "--dataset", ds, "--scale", SCALE, "--json", tmp_path / "r.json"],
            "bench": ["bench", nan, "--sizes", "8", "--runs", "1", "--warmup", "0", "--json", tmp_path / "r.json"]}
    r = run(args[command])
    assert_error(r, 2, tmp_path, contains="NaN")
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "r.json").exists()
    assert "mean" not in r.stdout


def test_nan_weights_calibrate(models, tmp_path):
    pytest.importorskip("onnxconverter_common")
    pytest.importorskip("matplotlib")
    ds = B.dataset(tmp_path / "ds", SCALE, names=("a",))
    r = run(["calibrate", models["nan"], "--eval", ds, "--calibrator", "max", "--no-fp16", "-o", tmp_path / "rep"])
    assert_error(r, 2, tmp_path, contains="NaN")
    assert not (tmp_path / "rep" / "calibration_report.json").exists()


@pytest.mark.parametrize("command", ["infer", "bench"])
def test_forged_onnx_scale_is_refused(models, tmp_path, command):
    pytest.importorskip("onnxruntime")
    src = B.good_png(tmp_path / "in.png", 12, 10)
    args = {"infer": ["infer", models["forged_onnx"], src, "-o", tmp_path / "o.png"],
            "bench": ["bench", models["forged_onnx"], "--sizes", "8", "--runs", "1", "--warmup", "0"]}[command]
    r = run(args)
    assert_error(r, 2, tmp_path, contains="claims scale x4")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("command", ["infer", "bench", "validate"])
def test_missing_tensorrt_is_exit_3_everywhere(models, tmp_path, command):
    engine = B.fake_engine(tmp_path / "m.plan")
    src = B.good_png(tmp_path / "in.png")
    ds = B.dataset(tmp_path / "ds", SCALE)
    args = {"infer": ["infer", engine, src, "-o", tmp_path / "o.png"],
            "bench": ["bench", engine, "--sizes", "8"],
            "validate": ["validate", engine, "--dataset", ds, "--scale", SCALE, "--reference", models["good"]]}
    r = run(args[command])
    try:
        import tensorrt  # noqa: F401
        if getattr(tensorrt, "Builder", None) is not None:
            pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    assert_error(r, 3, tmp_path)


# -- collisions: inputs never overwritten, refused before any work ------------------------------------
def test_folder_into_itself_refuses_overwriting_an_input(models, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    B.good_png(d / "a.png")
    B.good_png(d / f"a_x{SCALE}.png", seed=1)
    before = B.snapshot(d)
    r = run(["infer", models["good"], d, "-o", d])
    assert_error(r, 2, tmp_path, contains=f"a_x{SCALE}.png")
    assert "a.png" in r.stderr  # names both files
    unchanged(before)
    assert sorted(p.name for p in d.iterdir()) == ["a.png", f"a_x{SCALE}.png"]  # nothing written


def test_output_into_the_hr_folder_is_refused(models, tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    B.good_png(hr / "good.png", 24, 28)
    lr = B.good_png(tmp_path / "good.png")
    before = B.snapshot(hr, lr)
    r = run(["infer", models["good"], lr, "-o", hr / "good.png", "--hr", hr])
    assert_error(r, 2, tmp_path, contains="hr/good.png")
    unchanged(before)


def test_output_through_a_symlink_is_refused(models, tmp_path):
    src = B.good_png(tmp_path / "in.png")
    link = tmp_path / "link.png"
    link.symlink_to(src)
    before = B.snapshot(src)
    r = run(["infer", models["good"], src, "-o", link])
    assert_error(r, 2, tmp_path)
    unchanged(before)


@pytest.mark.parametrize("command", ["eval", "bench", "validate", "calibrate", "export", "build"])
def test_outputs_never_replace_an_input(models, tmp_path, command):
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(models["good"].read_bytes())
    ds = B.dataset(tmp_path / "ds", SCALE)
    onnx_file = B.forged_onnx(tmp_path / "model.onnx", SCALE)
    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "calibration.json").write_text("{}")
    (cal / "calibration_max.json").write_text("{}")
    lib = tmp_path / "lib.json"
    lib.write_text("not a library")
    args = {"eval": ["eval", ckpt, "--dataset", ds, "--json", ckpt],
            "bench": ["bench", ckpt, "--sizes", "8", "--runs", "1", "--warmup", "0", "--json", ckpt],
            "validate": ["validate", ckpt, "--dataset", ds, "--scale", SCALE, "--json", ds / "HR" / "a.png"],
            # the report's calibration_max.json would replace a file of the calibration folder
            "calibrate": ["calibrate", ckpt, "--eval", ds, "-o", cal, "--calibrator", "max", "--calib-dir", cal],
            # export writes calibration.json into -o: the --calib-json it reads
            "export": ["export", ckpt, "-o", cal, "--int8", "--calib-json", cal / "calibration.json"],
            # the engine's description lib.json would replace the plugin library
            "build": ["build", onnx_file, "-o", tmp_path / "lib.plan", "--plugin-lib", lib]}[command]
    before = B.snapshot(ckpt, ds, onnx_file, cal, lib)
    r = run(args)
    assert_error(r, 2, tmp_path, contains="would overwrite the input")
    unchanged(before)


def test_same_stem_gets_distinct_outputs(models, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    B.good_png(d / "a.png")
    Image.open(B.good_png(tmp_path / "x.png", seed=5)).save(d / "a.jpg")
    r = run(["infer", models["good"], d, "-o", tmp_path / "out"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LEDGER, f"a_jpg_x{SCALE}.png", f"a_x{SCALE}.png"]


def test_planned_names_that_collide_are_refused_before_work(models, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    B.good_png(d / "a.png")
    Image.open(B.good_png(tmp_path / "x.png", seed=5)).save(d / "a.jpg")
    B.good_png(d / "a_jpg.png", seed=6)  # a.jpg -> a_jpg_x2.png, a_jpg.png -> a_jpg_x2.png
    r = run(["infer", models["good"], d, "-o", tmp_path / "out"])
    assert_error(r, 2, tmp_path, contains="two outputs")
    assert "a.jpg" in r.stderr and "a_jpg.png" in r.stderr
    assert not (tmp_path / "out").exists()


# -- folder runs finish --------------------------------------------------------------------------------
def _mixed_folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    B.good_png(d / "a.png")
    B.corrupt_png(d / "b.png")
    B.good_png(d / "c.png", seed=2)
    return d


def test_folder_run_skips_bad_files_and_exits_1(models, tmp_path):
    d = _mixed_folder(tmp_path)
    before = B.snapshot(d)
    r = run(["infer", models["good"], d, "-o", tmp_path / "out"])
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LEDGER, f"a_x{SCALE}.png", f"c_x{SCALE}.png"]
    assert "2 written, 1 failed" in r.stderr and "b.png" in r.stderr
    assert "Traceback" not in r.output
    unchanged(before)


def test_fail_fast_stops_at_the_first_bad_file(models, tmp_path):
    d = _mixed_folder(tmp_path)
    r = run(["infer", models["good"], d, "-o", tmp_path / "out", "--fail-fast"])
    assert_error(r, 2, tmp_path, contains="b.png")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LEDGER, f"a_x{SCALE}.png"]


def test_failed_folder_run_leaves_no_empty_folder(models, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    B.corrupt_png(d / "b.png")
    r = run(["infer", models["good"], d, "-o", tmp_path / "deep" / "out"])
    assert r.exit_code == 1 and "0 written, 1 failed" in r.stderr
    assert not (tmp_path / "deep").exists()


def test_unwritable_output_names_the_target_not_the_temp(models, tmp_path):
    src = B.good_png(tmp_path / "in.png")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = run(["infer", models["good"], src, "-o", blocker / "o.png"])  # a path under a file: unwritable, even as root
    assert_error(r, 2, tmp_path)
    assert "afile" in r.stderr and ".tmp" not in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into 0o500 folders")
def test_readonly_folder(models, tmp_path):
    src = B.good_png(tmp_path / "in.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = run(["infer", models["good"], src, "-o", ro / "o.png"])
        assert_error(r, 2, tmp_path)
        assert ".agileir-" not in r.stderr
    finally:
        ro.chmod(0o700)


# -- cheap checks before the model loads ---------------------------------------------------------------
def test_input_and_suffix_checked_before_the_model(models, tmp_path):
    r = run(["infer", models["random_st"], tmp_path / "missing.png"])
    assert_error(r, 2, contains="input not found")
    src = B.good_png(tmp_path / "in.png")
    r = run(["infer", models["random_st"], src, "-o", tmp_path / "o.jpg"])
    assert_error(r, 2, contains=".png")


# -- usage errors: one line for every command ----------------------------------------------------------
COMMANDS = ["info", "infer", "eval", "export", "calibrate", "build", "validate", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_error_is_one_line(command):
    r = run([command, "--no-such-option"])
    assert_error(r, 2)


@pytest.mark.parametrize("command", ["eval", "validate", "calibrate"])
def test_scale_zero_is_refused(models, tmp_path, command):
    ds = B.dataset(tmp_path / "ds", SCALE)
    args = {"eval": ["eval", models["good"], "--dataset", ds, "--scale", 0],
            "validate": ["validate", models["good"], "--dataset", ds, "--scale", 0],
            "calibrate": ["calibrate", models["good"], "--eval", ds, "--scale", 0]}[command]
    r = run(args)
    assert_error(r, 2, contains="--scale")


def test_entry_points_one_line(tmp_path, capsys):
    from agileir.cli import export_main, infer_main
    import sys

    for entry in (infer_main, export_main):
        old = sys.argv
        sys.argv = ["x", "--no-such-option"]
        try:
            with pytest.raises(SystemExit) as e:
                entry()
        finally:
            sys.argv = old
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


# -- SIGTERM while writing, stale temporaries ----------------------------------------------------------
def test_sigterm_while_writing_leaves_nothing(models, tmp_path, monkeypatch):
    src = B.good_png(tmp_path / "in.png")
    out = tmp_path / "out" / "o.png"
    real_save = Image.Image.save

    def save_then_die(self, fp, *a, **k):
        real_save(self, fp, *a, **k)  # the temporary file exists, not yet renamed
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Image.Image, "save", save_then_die)
    r = run(["infer", models["good"], src, "-o", out])
    assert_error(r, 143, tmp_path, contains="terminated")
    assert not out.exists()
    assert signal.getsignal(signal.SIGTERM) is not None


def test_sigint_while_writing_leaves_nothing(models, tmp_path, monkeypatch):
    src = B.good_png(tmp_path / "in.png")
    out = tmp_path / "o.png"

    def interrupt(self, fp, *a, **k):
        Path_ = type(tmp_path)
        Path_(fp).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupt)
    r = run(["infer", models["good"], src, "-o", out])
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert not out.exists() and not B.temp_files(tmp_path)


def test_stale_temporaries_are_swept_at_start(models, tmp_path):
    src = B.good_png(tmp_path / "in.png")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stale = out_dir / ".o.png.agileir-0123456789ab.tmp"
    stale.write_bytes(b"partial")
    old = os.path.getmtime(stale) - 7200
    os.utime(stale, (old, old))
    r = run(["infer", models["good"], src, "-o", out_dir / "o.png"])
    assert r.exit_code == 0 and not stale.exists()


# -- memory budget ---------------------------------------------------------------------------------------
def test_auto_tiles_over_budget_in_one_line(models, tmp_path):
    src = B.good_png(tmp_path / "in.png", 64, 64)
    r = run(["infer", models["good"], src, "-o", tmp_path / "o.png", "--max-memory", "1M"])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if "memory budget" in line]
    assert len(notes) == 1 and "tiling" in notes[0]
    r = run(["infer", models["good"], src, "-o", tmp_path / "w.png", "--max-memory", "1M", "--tile", "0"])
    assert r.exit_code == 0 and "memory budget" not in r.stderr  # --tile 0 forces the whole image
    a = np.asarray(Image.open(tmp_path / "o.png"), np.float64)
    b = np.asarray(Image.open(tmp_path / "w.png"), np.float64)
    assert 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)) > 30


def test_bad_memory_and_tile_options(models, tmp_path):
    src = B.good_png(tmp_path / "in.png")
    assert_error(run(["infer", models["good"], src, "--max-memory", "lots"]), 2, contains="--max-memory")
    assert_error(run(["infer", models["good"], src, "--tile", "-3"]), 2, contains="--tile")


def test_estimate_is_calibrated():
    """The estimate against the peaks measured by bench/memory_bench.py --calibrate (PyTorch CPU)."""
    from agileir.upscale.memory import estimate_peak
    from agileir.models import preset

    measured_mib = {(TINY_AGILEIR, 128): 302.9, (TINY_AGILEIR, 384): 601.8,
                    (preset("agileir-light-x4"), 64): 307.5, (preset("agileir-light-x4"), 160): 535.5}
    for (config, size), mib in measured_mib.items():
        est = estimate_peak(config, size, size, config.scale) / 2**20
        assert abs(est / mib - 1) < 0.15, (config.arch, size, est, mib)


# -- grayscale: one scoring rule -----------------------------------------------------------------------
def test_grayscale_scored_as_written_in_infer_and_eval(models, tmp_path):
    set14 = BENCHMARKS / "Set14"
    if not (set14 / "HR" / "bridge.png").is_file():
        pytest.skip("Set14 not found")
    from agileir.quality.evaluation import score_as_written
    from agileir.io.images import read_image, to_uint8

    ds = tmp_path / "ds"
    (ds / "HR").mkdir(parents=True)
    (ds / "LR_bicubic" / "X2").mkdir(parents=True)
    hr = Image.open(set14 / "HR" / "bridge.png").crop((0, 0, 96, 96))
    assert hr.mode == "L"
    hr.save(ds / "HR" / "bridge.png")
    hr.resize((48, 48), Image.Resampling.BICUBIC).save(ds / "LR_bicubic" / "X2" / "bridgex2.png")
    r = run(["eval", models["good"], "--dataset", ds, "--json", tmp_path / "e.json"])
    assert r.exit_code == 0, r.output
    import json

    eval_psnr = json.loads((tmp_path / "e.json").read_text())["images"][0]["psnr"]
    r = run(["infer", models["good"], ds / "LR_bicubic" / "X2" / "bridgex2.png", "-o", tmp_path / "sr.png",
             "--hr", ds / "HR"])
    assert r.exit_code == 0, r.output
    infer_psnr = float(r.stdout.split("PSNR ")[1].split()[0])
    written = read_image(tmp_path / "sr.png")
    assert written.is_grayscale
    disk_psnr, _ = score_as_written(written.rgb, to_uint8(read_image(ds / "HR" / "bridge.png").to_rgb()), 2, True)
    assert abs(eval_psnr - infer_psnr) < 1e-3 and abs(disk_psnr - eval_psnr) < 1e-6


# -- one exit code per class of failure: a full disk is 2, a missing package 3, in every command ---------------
def test_batch_without_ray_client_is_exit_3(models, tmp_path):
    pytest.importorskip("ray.data")
    try:
        import grpc  # noqa: F401
        pytest.skip("ray[client] is installed here")
    except ImportError:
        pass
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(src / "a.png")
    r = run(["batch", models["good"], src, tmp_path / "out", "--ray-address", "ray://127.0.0.1:1"])
    assert_error(r, 3, tmp_path, contains="ray[client]")
    assert not list((tmp_path / "out").rglob("*"))  # nothing written (ray_batch creates the folder early)


def test_batch_disk_full_is_exit_2_not_1(models, tmp_path, monkeypatch):
    """A file that failed for a full disk is the machine's problem: exit 2 like infer, not 1 (a bad file).
    The Ray job is replaced by what it raises when a write hits ENOSPC: what is tested is the command's mapping."""
    pytest.importorskip("ray.data")
    import errno

    import agileir.cluster.job as job

    def full_disk_run(spec, source, out_dir, tiling, options, gate=None, echo=None, pipeline=None):
        raise OSError(errno.ENOSPC, "No space left on device writing out/b_x4.png (the output of in/b.png): the run "
                                    "stopped after 1 of 2 images (see m.json)")

    monkeypatch.setattr(job, "run_batch", full_disk_run)
    (tmp_path / "in").mkdir()
    r = run(["batch", models["good"], tmp_path / "in", tmp_path / "out", "--manifest", tmp_path / "m.json"])
    assert_error(r, 2, tmp_path, contains="No space left on device")
    assert "b.png" in r.stderr.splitlines()[-1]
