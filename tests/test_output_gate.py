"""The output gate (agileir/io/gate.py): its rules, and every command x kind of output it is wired into.

Rules: an input is never a target (symlink, hard link, even with --overwrite); a file agileir wrote is replaced
by an output of the same kind; a file it did not write, or one edited since, or one of another kind, is refused
without --overwrite; one target claimed twice is refused. Every refusal is one `error:` line, exit 2, and the
refused file is byte-for-byte unchanged. Export folders are validated before use (agileir/export/folder.py).
Exit codes: a full disk is 2 and a missing `ray[client]` is 3 (cli/common.py's one mapping)."""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import bad_inputs as B
from agileir.cli import main
from agileir.cli.common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, cli_error_for, is_disk_full
from agileir.io.gate import LEDGER, OVERWRITE_HINT, OutputConflict, OutputGate, read_ledger, toolkit_kind
from agileir.models import build_model, save_safetensors
from test_models import TINY_SWINIR
from conftest import noise_video

USER_TEXT = b"the user's own file\n"


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(r, target, contains=None):
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == EXIT_BAD_INPUT, r.output
    assert len(errs) == 1 and "Traceback" not in r.output, r.output
    assert str(target) in errs[0] or target.name in errs[0], errs[0]
    if contains:
        assert contains in errs[0], errs[0]


# -- the gate's own rules -------------------------------------------------------------------------------------
def test_input_is_refused_through_symlink_and_hard_link_even_with_overwrite(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"input")
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for overwrite in (False, True):
        gate = OutputGate([src], overwrite)
        for target in (src, tmp_path / "link.png", tmp_path / "hard.png"):
            with pytest.raises(OutputConflict, match="would overwrite the input"):
                gate.claim(target, "image")
    assert src.read_bytes() == b"input"


def test_toolkit_output_is_replaced_user_file_and_edited_file_refused(tmp_path):
    out = tmp_path / "r.json"
    OutputGate().write_json(out, {"a": 1}, "report")
    assert toolkit_kind(out) == "report" and read_ledger(tmp_path)["r.json"].size == out.stat().st_size
    OutputGate().write_json(out, {"a": 2}, "report")  # a rerun replaces its own output
    assert json.loads(out.read_text()) == {"a": 2}
    with pytest.raises(OutputConflict, match="is agileir's report, not its engine"):
        OutputGate().claim(out, "engine")  # another kind of output never replaces it
    out.write_text('{"a": 2, "edited": true}\n')  # edited by the user: no longer the toolkit's
    with pytest.raises(OutputConflict, match="not written by agileir"):
        OutputGate().claim(out, "report")
    user = tmp_path / "mine.json"
    user.write_bytes(USER_TEXT)
    with pytest.raises(OutputConflict, match="--overwrite"):
        OutputGate().write_json(user, {}, "report")
    assert user.read_bytes() == USER_TEXT
    OutputGate(overwrite=True).write_json(user, {"b": 1}, "report")
    assert json.loads(user.read_text()) == {"b": 1} and toolkit_kind(user) == "report"


def test_symlinked_target_and_double_claim_and_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(USER_TEXT)
    (tmp_path / "link.json").symlink_to(elsewhere)
    with pytest.raises(OutputConflict, match="not written by agileir"):
        OutputGate().claim(tmp_path / "link.json", "report")
    gate = OutputGate()
    gate.claim(tmp_path / "a.json", "report", "--json")
    with pytest.raises(OutputConflict, match="two outputs"):
        gate.claim(tmp_path / "sub" / ".." / "a.json", "report", "the manifest")
    with pytest.raises(OutputConflict, match="record of the files it wrote"):
        OutputGate(overwrite=True).claim(tmp_path / LEDGER, "report")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OutputConflict, match="is a folder"):
        OutputGate(overwrite=True).claim(tmp_path / "dir.json", "report")
    assert elsewhere.read_bytes() == USER_TEXT


def test_disk_full_inside_a_write_leaves_nothing(tmp_path, monkeypatch):
    import agileir.io.atomic as atomic

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(OSError) as e:
        OutputGate().write_json(tmp_path / "r.json", {"a": 1}, "report")
    assert not (tmp_path / "r.json").exists() and not B.temp_files(tmp_path)
    error = cli_error_for(e.value)
    assert error.exit_code == EXIT_BAD_INPUT and "r.json" in error.message and "space" in error.message


def test_exit_codes_disk_full_and_ray_client():
    assert cli_error_for(OSError(errno.ENOSPC, "No space left on device")).exit_code == EXIT_BAD_INPUT
    assert is_disk_full("[Errno 28] No space left on device: 'out/a_x4.png'") and not is_disk_full("bad PNG")
    ray = pytest.importorskip("ray")
    try:
        import grpc  # noqa: F401
        pytest.skip("ray[client] is installed here: its missing-package error cannot be produced")
    except ImportError:
        pass
    with pytest.raises(ValueError) as e:  # ray's own error for a ray:// address without ray[client]
        ray.client("ray://127.0.0.1:1")
    error = cli_error_for(e.value)
    assert error.exit_code == EXIT_ENVIRONMENT and "ray[client]" in error.message


# -- commands x outputs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny x3 checkpoint, its export folder (agileir-export, in process) and a one-image dataset."""
    root = tmp_path_factory.mktemp("gate")
    torch.manual_seed(0)
    save_safetensors(build_model(TINY_SWINIR), root / "tiny.safetensors")
    r = run(["export", root / "tiny.safetensors", "-o", root / "exp", "--form", "standard"])
    assert r.exit_code == 0, r.output
    rng = np.random.default_rng(0)
    (root / "set" / "HR").mkdir(parents=True)
    (root / "set" / "LR_bicubic" / "X3").mkdir(parents=True)
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / "set" / "HR" / "a.png")
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(root / "set" / "LR_bicubic" / "X3" / "ax3.png")
    (root / "in").mkdir()
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(root / "in" / "b.png")
    (root / "files.txt").write_text(str(root / "in" / "b.png") + "\n")
    (root / "pair").mkdir()  # a.png's output a_x3.png is an input of a run over the folder
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(root / "pair" / "a.png")
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / "pair" / "a_x3.png")
    if importlib.util.find_spec("av") is not None:
        _make_clip(root / "clip.mkv")
    return root


def _make_clip(path, frames=3, size=8):
    """A tiny FFV1 video (`size` x `size` noise, 24 fps)."""
    return noise_video(path, frames, size, size)


def test_export_records_sha256_and_its_files_as_its_own(files):
    info = json.loads((files / "exp" / "export.json").read_text())
    assert info["forms"]["standard"]["sha256"] == B.sha(files / "exp" / "model.onnx")
    assert toolkit_kind(files / "exp" / "model.onnx") == "export" == toolkit_kind(files / "exp" / "export.json")


def _copy_export(files, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(files / "exp", exp)
    return exp


# command -> (its arguments: {f} the fixture's folder, {t} the test's; every file it writes, below {t})
COMMANDS = {
    "eval --json": (["eval", "{f}/tiny.safetensors", "--dataset", "{f}/set", "--json", "{t}/out.json"],
                    ["out.json"]),
    "validate --json": (["validate", "{f}/exp/model.onnx", "--dataset", "{f}/set", "--scale", "3", "--reference",
                         "{f}/tiny.safetensors", "--json", "{t}/out.json"], ["out.json"]),
    "bench --json": (["bench", "{f}/exp/model.onnx", "--sizes", "8", "--runs", "1", "--warmup", "0", "--json",
                      "{t}/out.json"], ["out.json"]),
    "calibrate": (["calibrate", "{f}/tiny.safetensors", "--eval", "{f}/set", "-o", "{t}/cal", "--calibrator", "max",
                   "--no-fp16"], ["cal/calibration_report.json", "cal/calibration_report.md",
                                  "cal/calibration_report.png", "cal/calibration_max.json"]),
    "agileir-export": (["export", "{f}/tiny.safetensors", "-o", "{t}/x", "--form", "standard", "--fp16", "--int8"],
                       ["x/model.onnx", "x/export.json", "x/model.fp16.onnx", "x/model.int8.onnx", "x/calibration.json",
                        "x/model.plan", "x/model.json", "x/model.int8.json"]),
    "build": (["build", "{f}/exp/model.onnx", "--target", "rtx", "-o", "{t}/e.plan"], ["e.plan", "e.json"]),
    "batch": (["batch", "{f}/tiny.safetensors", "{f}/in", "{t}/out", "--manifest", "{t}/m.json"],
              ["m.json", "out/b_x3.png"]),
    "batch, default manifest": (["batch", "{f}/tiny.safetensors", "{f}/in", "{t}/out"], ["out/manifest.json"]),
    "agileir-infer image": (["infer", "{f}/tiny.safetensors", "{f}/in/b.png", "-o", "{t}/o.png"], ["o.png"]),
    "agileir-infer folder": (["infer", "{f}/tiny.safetensors", "{f}/in", "-o", "{t}/out"], ["out/b_x3.png"]),
    "agileir-infer video": (["infer", "{f}/tiny.safetensors", "{f}/clip.mkv", "-o", "{t}/v.mkv"], ["v.mkv"]),
    "video": (["video", "{f}/tiny.safetensors", "{f}/clip.mkv", "-o", "{t}/v.mkv"], ["v.mkv"]),
    "triton": (["triton", "{f}/exp", "-o", "{t}/repo"], ["repo/README.md", "repo/agileir_x3/config.pbtxt",
                                                       "repo/agileir_x3/1/model.onnx"]),
}
CASES = [(command, target) for command, (_, targets) in sorted(COMMANDS.items()) for target in targets]


@pytest.mark.parametrize("command,target", CASES, ids=[f"{c}: {t}" for c, t in CASES])
def test_user_file_is_refused_before_any_work(files, tmp_path, command, target):
    args, _ = COMMANDS[command]
    if "{f}/clip.mkv" in args:
        pytest.importorskip("av", reason="PyAV is not installed (pip install 'agileir[video]')")
    target = tmp_path / target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(USER_TEXT)
    r = run([a.format(f=files, t=tmp_path) for a in args])
    assert_refused(r, target, contains="not written by agileir")
    assert target.read_bytes() == USER_TEXT and not B.temp_files(tmp_path)


INPUT_TARGETS = {  # the data-loss cases: an output onto an input of the run
    "batch --manifest onto an input image": lambda f, t: (["batch", f / "tiny.safetensors", f / "in", t / "o",
                                                          "--manifest", f / "in" / "b.png"], f / "in" / "b.png"),
    "batch --manifest onto the checkpoint": lambda f, t: (["batch", f / "tiny.safetensors", f / "in", t / "o",
                                                          "--manifest", f / "tiny.safetensors"],
                                                         f / "tiny.safetensors"),
    "batch --manifest onto the input list": lambda f, t: (["batch", f / "tiny.safetensors", f / "files.txt", t / "o",
                                                          "--manifest", f / "files.txt"], f / "files.txt"),
    "triton -o the export folder": lambda f, t: (["triton", f / "exp", "-o", f / "exp", "--overwrite"],
                                                 None),
    "agileir-infer -o onto the input image": lambda f, t: (["infer", f / "tiny.safetensors", f / "in" / "b.png",
                                                           "-o", f / "in" / "b.png"], f / "in" / "b.png"),
    "agileir-infer folder into itself (a_x3.png an input)": lambda f, t: (["infer", f / "tiny.safetensors",
                                                                          f / "pair", "-o", f / "pair"],
                                                                         f / "pair" / "a_x3.png"),
    "batch into its input folder (a_x3.png an input)": lambda f, t: (["batch", f / "tiny.safetensors", f / "pair",
                                                                     f / "pair"], f / "pair" / "a_x3.png"),
    "video -o onto the input video": lambda f, t: (["video", f / "tiny.safetensors", f / "clip.mkv", "-o",
                                                   f / "clip.mkv"], f / "clip.mkv"),
}


@pytest.mark.parametrize("case", sorted(INPUT_TARGETS))
def test_inputs_are_never_targets(files, tmp_path, case):
    args, target = INPUT_TARGETS[case](files, tmp_path)
    if target == files / "clip.mkv":
        pytest.importorskip("av", reason="PyAV is not installed (pip install 'agileir[video]')")
    if target is None:  # triton into the export folder: its README.md would replace the export's
        (files / "exp" / "README.md").write_bytes(USER_TEXT)
        target = files / "exp" / "README.md"
    before = B.snapshot(files)
    try:
        r = run(args + ["--overwrite"] if "--overwrite" not in args else args)
        assert_refused(r, target, contains="would overwrite the input")
        assert B.snapshot(files) == before
    finally:
        if target.name == "README.md":
            target.unlink()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the in-process batch runs of this module (each would start its own otherwise)."""
    pytest.importorskip("ray.data")
    import ray

    from agileir.cluster.session import init_ray

    started = init_ray(None, 2)
    yield
    if started:
        ray.shutdown()


# the upscale path: command -> (its arguments, the file it writes below {t}, its kind of output)
RERUNS = {
    "agileir-infer image": (["infer", "{f}/tiny.safetensors", "{f}/in/b.png", "-o", "{t}/o.png"], "o.png", "image"),
    "agileir-infer folder": (["infer", "{f}/tiny.safetensors", "{f}/in", "-o", "{t}/out"], "out/b_x3.png", "image"),
    "video": (["video", "{f}/tiny.safetensors", "{f}/clip.mkv", "-o", "{t}/v.mkv", "--codec", "ffv1", "--pix-fmt",
               "yuv444p"], "v.mkv", "video"),
    "batch": (["batch", "{f}/tiny.safetensors", "{f}/in", "{t}/out"], "out/b_x3.png", "image"),
}


def _content(path, kind):
    """What an output holds: a PNG's bytes, a video's decoded frames (Matroska files carry a random segment id)."""
    if kind != "video":
        return path.read_bytes()
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").tobytes() for f in c.decode(c.streams.video[0])]


def _ledger_lines(path):
    return [json.loads(line) for line in (path.parent / LEDGER).read_text().splitlines()
            if json.loads(line)["name"] == path.name]


@pytest.mark.parametrize("command", sorted(RERUNS))
def test_upscale_rerun_replaces_its_own_output_and_overwrite_the_users(files, tmp_path, request, command):
    """A rerun into the same output works without --overwrite (the ledger knows the file; batch skips it, its
    sha256 matching the manifest); a file the user put there is refused naming it and --overwrite; with
    --overwrite it is replaced by what the first run wrote (the same PNG bytes, the same video frames)."""
    args, target, kind = RERUNS[command]
    if "{f}/clip.mkv" in args:
        pytest.importorskip("av", reason="PyAV is not installed (pip install 'agileir[video]')")
    if args[0] == "batch":
        request.getfixturevalue("local_ray")
    args, target = [a.format(f=files, t=tmp_path) for a in args], tmp_path / target
    r = run(args)
    assert r.exit_code == 0, r.output
    first = _content(target, kind)
    assert toolkit_kind(target) == kind and len(_ledger_lines(target)) == 1 and len(first) > 0
    r = run(args)
    assert r.exit_code == 0, r.output
    assert _content(target, kind) == first and toolkit_kind(target) == kind
    if args[0] == "batch":  # resumed: kept, not written again
        assert "0 upscaled, 1 skipped" in r.stdout and len(_ledger_lines(target)) == 1, r.stdout
    else:
        assert len(_ledger_lines(target)) == 2
    target.write_bytes(USER_TEXT)
    assert_refused(run(args), target, contains="not written by agileir")
    assert target.read_bytes() == USER_TEXT and OVERWRITE_HINT in run(args).stderr
    r = run(args + ["--overwrite"])
    assert r.exit_code == 0, r.output
    assert _content(target, kind) == first and toolkit_kind(target) == kind
    assert not B.temp_files(tmp_path)


def test_upscale_output_the_ledger_cannot_record_is_removed(files, tmp_path, monkeypatch):
    """A PNG written but not recorded (the ledger's append fails: a full disk) would be the user's for the next
    run: it is removed, the run ends with exit 2 naming the disk, and a rerun needs no --overwrite."""
    import agileir.io.gate as gate

    real_record = gate.record

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gate, "record", full)
    args = ["infer", files / "tiny.safetensors", files / "in" / "b.png", "-o", tmp_path / "o.png"]
    r = run(args)
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == EXIT_BAD_INPUT and len(errs) == 1 and "No space left" in errs[0], r.output
    assert not (tmp_path / "o.png").exists() and not B.temp_files(tmp_path)
    monkeypatch.setattr(gate, "record", real_record)
    assert run(args).exit_code == 0 and toolkit_kind(tmp_path / "o.png") == "image"


def test_export_rerun_replaces_its_own_files(files, tmp_path):
    args = ["export", files / "tiny.safetensors", "-o", tmp_path / "x", "--form", "standard", "--no-validate"]
    assert run(args).exit_code == 0
    first = B.snapshot(tmp_path / "x")
    r = run(args)
    assert r.exit_code == 0, r.output
    assert B.snapshot(tmp_path / "x").keys() == first.keys()
    assert toolkit_kind(tmp_path / "x" / "export.json") == "export"


def test_build_does_not_replace_export_json_with_its_sidecar(files, tmp_path):
    exp = _copy_export(files, tmp_path)
    before = B.sha(exp / "export.json")
    r = run(["build", exp / "model.onnx", "--target", "rtx", "-o", exp / "export.plan"])
    assert_refused(r, exp / "export.json", contains="is agileir's export, not its engine description")
    assert B.sha(exp / "export.json") == before and not (exp / "export.plan").exists()


def test_triton_rerun_replaces_its_own_and_overwrite_replaces_the_users(files, tmp_path):
    repo = tmp_path / "repo"
    assert run(["triton", files / "exp", "-o", repo]).exit_code == 0
    config = repo / "agileir_x3" / "config.pbtxt"
    assert toolkit_kind(config) == "triton repository" and (repo / LEDGER).is_file()
    r = run(["triton", files / "exp", "-o", repo, "--instances", 2])  # rerun: its own files are replaced
    assert r.exit_code == 0, r.output
    assert "count: 2" in config.read_text()
    config.write_text(config.read_text().replace("count: 2", "count: 5"))  # hand-edited
    r = run(["triton", files / "exp", "-o", repo])
    assert_refused(r, config, contains="not written by agileir")
    assert "count: 5" in config.read_text()
    assert run(["triton", files / "exp", "-o", repo, "--overwrite"]).exit_code == 0
    assert "count: 1" in config.read_text()


def test_json_report_rerun_replaces_its_own_and_overwrite_the_users(files, tmp_path):
    out = tmp_path / "out.json"
    args = ["bench", files / "exp" / "model.onnx", "--sizes", 8, "--runs", 1, "--warmup", 0, "--json", out]
    assert run(args).exit_code == 0 and toolkit_kind(out) == "benchmark report"
    assert run(args).exit_code == 0  # its own earlier report
    out.write_bytes(USER_TEXT)
    assert_refused(run(args), out)
    assert out.read_bytes() == USER_TEXT
    assert run(args + ["--overwrite"]).exit_code == 0
    assert json.loads(out.read_text())["settings"]["sizes"] == [8]


# -- export folders validated before use (agileir triton) -----------------------------------------------------
def _edit_info(exp, change):
    info = json.loads((exp / "export.json").read_text())
    change(info)
    (exp / "export.json").write_text(json.dumps(info))


BAD_EXPORTS = {
    "scale -4": (lambda exp: _edit_info(exp, lambda i: i.update(scale=-4)), "$.scale"),
    "scale 2.5": (lambda exp: _edit_info(exp, lambda i: i.update(scale=2.5)), "$.scale"),
    "scale missing": (lambda exp: _edit_info(exp, lambda i: i.pop("scale")), "'scale' is a required property"),
    "forms a list": (lambda exp: _edit_info(exp, lambda i: i.update(forms=["standard"])), "$.forms"),
    "unknown form": (lambda exp: _edit_info(exp, lambda i: i["forms"].update(odd={"file": "model.onnx"})),
                     "$.forms"),
    "listed file missing": (lambda exp: (exp / "model.onnx").unlink(), "$.forms.standard.file"),
    "random bytes model.onnx": (lambda exp: (exp / "model.onnx").write_bytes(os.urandom(4096)),
                                "$.forms.standard.sha256"),
    "random bytes, no sha256 recorded": (lambda exp: (_edit_info(exp, lambda i: i["forms"]["standard"].pop("sha256")),
                                                      (exp / "model.onnx").write_bytes(os.urandom(4096))),
                                         "not a valid ONNX model"),
    "not JSON": (lambda exp: (exp / "export.json").write_text("{scale: 3"), "not valid JSON"),
    "engine changed since its build": (lambda exp: ((exp / "model.plan").write_bytes(b"other bytes"),
                                                    (exp / "model.json").write_text(json.dumps({
                                                        "format": "agileir-engine/1", "precision": "fp32",
                                                        "scale": 3, "engine_sha256": "0" * 64}))),
                                       "$.engine_sha256"),
    "no export.json": (lambda exp: (exp / "export.json").unlink(), "export.json not found"),
    "engine sidecar scale edited": (lambda exp: ((exp / "model.plan").write_bytes(b"engine bytes"),
                                                 (exp / "model.json").write_text(json.dumps({
                                                     "format": "agileir-engine/1", "precision": "fp32", "scale": 2,
                                                     "engine_sha256": B.sha(exp / "model.plan")}))),
                                    "model.json: $.scale is 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_triton_refuses_a_bad_export_folder_naming_file_and_field(files, tmp_path, case):
    exp = _copy_export(files, tmp_path)
    damage, expected = BAD_EXPORTS[case]
    damage(exp)
    r = run(["triton", exp, "-o", tmp_path / "repo"])
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == EXIT_BAD_INPUT and len(errs) == 1 and "Traceback" not in r.output, r.output
    assert expected in errs[0] and str(exp) in errs[0], errs[0]
    assert not (tmp_path / "repo").exists()


def test_triton_disk_full_is_exit_2_and_leaves_no_partial_file(files, tmp_path, monkeypatch):
    import agileir.io.gate as gate

    def full(src, dst):
        with open(dst, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(gate.shutil, "copyfile", full)
    r = run(["triton", files / "exp", "-o", tmp_path / "repo"])
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == EXIT_BAD_INPUT and len(errs) == 1 and "No space left" in errs[0], r.output
    assert "model.onnx" in errs[0] and ".agileir-" not in errs[0]
    assert not B.temp_files(tmp_path) and not list((tmp_path / "repo").rglob("model.onnx"))
