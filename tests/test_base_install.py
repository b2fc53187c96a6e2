"""Installs without the optional packages: each command that needs an extra says which, in one line, exit 3.

* the base install plus the `torch` extra (`pip install torch==2.13.0 && pip install -e ".[torch]"`) runs
  `agileir --help`, `agileir info` and `agileir-infer` on a checkpoint;
* a deploy install (`pip install -e ".[onnx]"`, no PyTorch) runs `agileir-infer`, `validate` and `bench` on
  both ONNX forms, the plugin form's GSWA node through the NumPy op of agileir.runtime.ort; commands that need
  a checkpoint name the `torch` extra.

Packages are hidden from a fresh interpreter (a meta-path finder that raises ModuleNotFoundError, as a missing
package does), so this runs on a machine where they are installed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image

from agileir.export.onnx_export import annotate, export_onnx
from agileir.io.samples import sample_image
from agileir.models import build_model, save_safetensors
from agileir.models.load import file_sha256
from agileir.quality.metrics import psnr
from agileir.runtime.ort import gswa_numpy
from conftest import saved_model
from gswa_cases import make_case
from test_models import TINY_AGILEIR, TINY_SWINIR

OPTIONAL = ("onnx", "onnxruntime", "onnxruntime_extensions", "onnxconverter_common", "onnxslim", "onnx_graphsurgeon",
            "matplotlib", "polygraphy", "tensorrt", "tensorrt_rtx", "cuda", "scipy", "ray", "tritonclient", "av",
            "openvino", "nncf")
TORCH = ("torch", "torchvision")
OTHER_ENGINES = ("openvino", "nncf")  # not in the `onnx` extra

_BLOCKER = """
import sys
class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Hidden())
"""


def run_without(hidden: tuple[str, ...], *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """`agileir ARGS` (or `code`) in a fresh interpreter where the `hidden` top-level packages cannot be imported."""
    code = code or f"sys.argv = ['agileir'] + {list(args)!r}; from agileir.cli import main; main()"
    return subprocess.run([sys.executable, "-c", _BLOCKER.format(hidden=set(hidden)) + code], capture_output=True,
                          text=True, timeout=300)


def run_base(*args: str) -> subprocess.CompletedProcess:
    """The base install with the torch extra: every optional package but PyTorch hidden."""
    return run_without(OPTIONAL, *args)


def run_deploy(*args: str) -> subprocess.CompletedProcess:
    """A deploy install (`.[onnx]`): PyTorch (and OpenVINO, another extra) hidden."""
    return run_without(TORCH + OTHER_ENGINES, *args)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny.safetensors"
    save_safetensors(build_model(TINY_SWINIR), path)
    return path


def test_help_and_info(checkpoint):
    r = run_base("--help")
    assert r.returncode == 0 and "export" in r.stdout and "infer" in r.stdout, r.stderr
    r = run_base("info", str(checkpoint))
    assert r.returncode == 0 and "arch:        swinir" in r.stdout, r.stderr


def test_infer_with_pytorch(checkpoint, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    r = run_base("infer", str(checkpoint), str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "b.png").size == (13 * 3, 9 * 3)


@pytest.mark.parametrize("args", [["export", "{ckpt}", "-o", "{tmp}/x"], ["calibrate", "{ckpt}", "--eval", "{tmp}"],
                                  ["video", "{ckpt}", "{tmp}/in.mp4", "-o", "{tmp}/out.mp4"]])
def test_commands_that_need_an_extra_say_which(checkpoint, tmp_path, args):
    r = run_base(*[a.format(ckpt=checkpoint, tmp=tmp_path) for a in args])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install 'agileir[" in lines[0], r.stderr


# -- deploy install: no PyTorch ---------------------------------------------------------------------------------

NODE_CASES = [  # dtype, B, H, W, key_dim, v_dim, window, shift, with_dw (the kernel's CPU-emulation cases)
    ("f32", 2, 48, 32, 32, 8, 16, 8, True),  # AgileIR-light group, shifted block
    ("f16", 1, 16, 32, 16, 30, 16, 0, True),
    ("f32", 1, 40, 16, 16, 30, 8, 4, True),
    ("f16", 2, 8, 24, 32, 8, 8, 0, True),
    ("f32", 1, 16, 16, 10, 10, 8, 4, False),  # SwinIR-light head: identity depthwise kernel in the node
    ("f32", 1, 16, 16, 64, 64, 16, 8, True),
    ("f16", 1, 32, 16, 40, 8, 16, 3, True),  # odd shift
    ("f32", 1, 16, 24, 1, 1, 8, 7, True),  # smallest dims, largest shift
]
NUMPY_GSWA_MAX_ABS_ERR = 1e-5  # float32 throughout, like the reference; measured <= 1.2e-7


@pytest.mark.parametrize("case_args", NODE_CASES, ids=lambda a: "-".join(map(str, a)))
def test_numpy_gswa_node_matches_the_pytorch_reference(case_args):
    dtype, B, H, W, kd, vd, w, s, with_dw = case_args
    case = make_case(dtype, B, H, W, kd, vd, w, s, with_dw=with_dw, seed=NODE_CASES.index(case_args))
    if with_dw:
        dw_weight, dw_bias = case.dw_weight.numpy(), case.dw_bias.numpy()
    else:  # what the exporter writes for SwinIR: the identity 5x5 kernel, zero bias
        dw_weight = np.zeros((kd, 1, 5, 5), np.float32)
        dw_weight[:, 0, 2, 2] = 1.0
        dw_bias = np.zeros(kd, np.float32)
    out = gswa_numpy(case.qkv.numpy(), dw_weight, dw_bias, case.bias_table.numpy(), w, s, kd, case.scale)
    reference = case.reference.numpy()
    assert out.shape == reference.shape and out.dtype == np.float32
    assert np.abs(out - reference).max() <= NUMPY_GSWA_MAX_ABS_ERR


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny AgileIR x2 (random BN statistics and projections, so attention counts) with both ONNX forms beside
    its checkpoint, annotated as agileir-export does, and a 20x24 input image."""
    folder = tmp_path_factory.mktemp("deploy")
    model, ckpt = saved_model(folder, TINY_AGILEIR, randomize=True)
    model.fuse()
    for form, name in (("standard", "model.onnx"), ("plugin", "model.plugin.onnx")):
        proto = export_onnx(model, form)
        annotate(proto, {"scale": 2, "window": TINY_AGILEIR.window_size, "form": form,
                         "source_checkpoint": {"file": ckpt.name, "sha256": file_sha256(ckpt)}})
        onnx.save(proto, str(folder / name))
    image = folder / "in.png"
    Image.fromarray((sample_image(24, 20) * 255).round().astype(np.uint8)).save(image)
    return folder


DEPLOY_PARITY_DB = 60.0  # the written 8-bit images, with and without PyTorch


@pytest.mark.parametrize("name", ["model.onnx", "model.plugin.onnx"])
def test_deploy_install_runs_both_onnx_forms(exported, tmp_path, name):
    model, image = str(exported / name), str(exported / "in.png")
    deploy = run_deploy("infer", model, image, "-o", str(tmp_path / "deploy.png"))
    assert deploy.returncode == 0, deploy.stderr
    full = run_without((), "infer", model, image, "-o", str(tmp_path / "full.png"))
    assert full.returncode == 0, full.stderr
    a, b = (np.asarray(Image.open(tmp_path / f), np.float64) / 255 for f in ("deploy.png", "full.png"))
    assert a.shape == (40, 48, 3) and psnr(a, b) >= DEPLOY_PARITY_DB


def test_deploy_install_keeps_torch_out_of_import_and_onnx_runs():
    code = ("import agileir, agileir.runtime, agileir.runtime.ort, agileir.models.gswa_node, agileir.quality.evaluation, "
            "agileir.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    r = run_without((), code=code)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_deploy_install_validates_against_an_fp32_onnx_reference(exported, tmp_path):
    dataset = tmp_path / "set"
    (dataset / "HR").mkdir(parents=True)
    (dataset / "LR_bicubic" / "X2").mkdir(parents=True)
    hr = Image.fromarray((sample_image(48, 40, seed=3) * 255).round().astype(np.uint8))
    hr.save(dataset / "HR" / "a.png")
    hr.resize((24, 20), Image.BICUBIC).save(dataset / "LR_bicubic" / "X2" / "ax2.png")
    r = run_deploy("validate", str(exported / "model.plugin.onnx"), "--dataset", str(dataset), "--scale", "2")
    assert r.returncode == 0, r.stderr
    assert "vs the ONNX Runtime FP32 reference model.onnx" in r.stdout and "PASS" in r.stdout, r.stdout


@pytest.mark.parametrize("args", [["export", "{ckpt}", "-o", "{tmp}/x"], ["infer", "{ckpt}", "{img}"],
                                  ["eval", "{ckpt}", "--dataset", "{tmp}"], ["info"]])
def test_checkpoint_commands_without_torch_name_the_torch_extra(exported, tmp_path, args):
    fields = {"ckpt": exported / "tiny.safetensors", "tmp": tmp_path, "img": exported / "in.png"}
    r = run_deploy(*[a.format(**fields) for a in args])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "pip install 'agileir[torch]'" in lines[0] and "pip install torch==2.13.0" in lines[0], r.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["eval", "bench"])
def test_a_cuda_device_that_is_not_there_exits_3(checkpoint, tmp_path, command):
    args = {"eval": ["eval", str(checkpoint), "--dataset", str(tmp_path)], "bench": ["bench", str(checkpoint)]}[command]
    r = run_without((), *args, "--device", "cuda:99")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert len(lines) == 1 and "--device cuda:99: CUDA is not available to PyTorch here" in lines[0], r.stderr


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """`agileir export` of a tiny AgileIR x2 (standard and plugin forms, validated): model.onnx, model.plugin.onnx
    and export.json as users get them."""
    from click.testing import CliRunner

    from agileir.cli import main

    folder = tmp_path_factory.mktemp("export")
    _, ckpt = saved_model(folder, TINY_AGILEIR, randomize=True)
    r = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(folder / "out")])
    assert r.exit_code == 0, r.output
    return folder / "out"


@pytest.mark.parametrize("name, form, special", [("model.onnx", "standard", None),
                                                 ("model.plugin.onnx", "plugin", "GSWA plugin")])
def test_info_describes_an_onnx_export_without_torch(tiny_export, name, form, special):
    """`agileir info model.onnx` read it as a pickle (exit 2, "needs arbitrary code to unpickle"); now it describes
    the graph and the export.json it came with, with PyTorch hidden."""
    r = run_deploy("info", str(tiny_export / name))
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(":", 1) for line in r.stdout.splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["kind"] == "ONNX" and fields["scale"] == "x2" and fields["form"] == form, r.stdout
    assert fields["precision"] == "fp32" and fields["opset"] == "17" and fields["arch"].startswith("agileir")
    assert int(fields["nodes"].split()[0]) > 50 and (special is None or special in fields["nodes"]), r.stdout
    assert fields["export.json"].startswith(str(tiny_export / "export.json")) and "sha256 matches" in fields["export.json"]
    assert "passed" in fields["export.json"], r.stdout
    data = json.loads(run_deploy("info", "--json", str(tiny_export / name)).stdout)
    assert data["scale"] == 2 and data["form"] == form and (data["node_counts"]["gswa"] > 0) == (form == "plugin")


def test_info_flags_a_replaced_onnx_and_refuses_a_foreign_file(tiny_export, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(tiny_export / "model.plugin.onnx", copy)  # not what export.json beside it lists as model.onnx
    shutil.copy(tiny_export / "export.json", tmp_path / "export.json")
    r = run_deploy("info", str(copy))
    assert r.returncode == 0 and "sha256 DIFFERS" in r.stdout, r.stdout + r.stderr
    (tmp_path / "bad.onnx").write_bytes(b"\x80\x04 not a graph")
    r = run_deploy("info", str(tmp_path / "bad.onnx"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "is not a readable ONNX model" in lines[0], r.stderr
    assert "unpickle" not in r.stderr


def test_info_describes_an_engine_from_its_sidecar(tiny_export, tmp_path):
    """An engine built here with TensorRT-RTX (no GPU needed), described without PyTorch or TensorRT."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed (pip install 'agileir[rtx]')")
    from click.testing import CliRunner

    from agileir.cli import main

    engine = tmp_path / "model.plan"
    r = CliRunner().invoke(main, ["build", str(tiny_export / "model.onnx"), "-o", str(engine), "--target", "rtx",
                                  "--opt-shape", "32x32", "--max-shape", "32x32"])
    assert r.exit_code == 0, r.output
    r = run_without(TORCH + ("tensorrt", "tensorrt_rtx"), "info", str(engine))
    assert r.returncode == 0, r.stderr
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in r.stdout.splitlines())}
    assert fields["kind"].startswith("engine (TensorRT-RTX") and fields["scale"] == "x2" and fields["form"] == "standard"
    assert fields["precision"] == "fp32" and fields["sha256"] == "matches engine.json", r.stdout
    assert fields["profile"].startswith("1x3x1x1 / 1x3x32x32 / 1x3x32x32") and "model.onnx" in fields["from"]


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="onnxruntime here has the CUDA provider")
def test_onnx_on_cuda_without_cuda_exits_3_without_torch(exported, tmp_path):
    """`agileir-infer model.onnx DIR --device cuda` ran on the CPU and exited 0; now, on a deploy install too, one
    error line naming CUDA and ONNX Runtime, exit 3, nothing written."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(exported / "in.png", folder / "in.png")
    r = run_deploy("infer", str(exported / "model.onnx"), str(folder), "--device", "cuda")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 3 and len(errors) == 1, r.stderr
    assert "CUDA is not available to ONNX Runtime here" in errors[0] and "onnxruntime-gpu" in errors[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "in_x2").exists()
