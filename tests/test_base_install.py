"""The base install (`pip install -e .`: torch, numpy, pillow, safetensors, click, tqdm) runs `agileir --help`,
`agileir info` and `agileir-infer` with PyTorch; a command that needs an extra says which, in one line, exit 3.

The optional packages are hidden from a fresh interpreter (sys.modules[name] = None makes `import name` fail),
so this runs on a machine where they are installed.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from agileir.models import build_model, save_safetensors
from test_models import TINY_SWINIR

OPTIONAL = ("onnx", "onnxruntime", "onnxruntime_extensions", "onnxconverter_common", "onnxslim", "onnx_graphsurgeon",
            "matplotlib", "polygraphy", "tensorrt", "tensorrt_rtx", "cuda", "scipy", "ray", "tritonclient", "av")


def run_base(*args: str) -> subprocess.CompletedProcess:
    hide = "".join(f"sys.modules[{m!r}] = None; " for m in OPTIONAL)
    code = f"import sys; {hide}sys.argv = ['agileir'] + {list(args)!r}; from agileir.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


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
