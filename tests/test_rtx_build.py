"""Real engines in CI: TensorRT-RTX builds every variant of both forms on this CPU-only machine, through the
toolkit's own commands (`agileir-export --fp16 --int8 --target rtx`, `agileir build --target rtx`).

Checked per engine: the build succeeded, engine + engine.json were written (atomically: no temporary file
left, the sidecar's sha256 is the engine's), and the network is what the graph says: one plugin layer per
GSWA node in the plugin form and none in the standard form; in the INT8 graphs every Q/DQ node became a
TensorRT Quantize/Dequantize layer and the builder warned about none of them. The commands run in
subprocesses: a parser abort (the failure the RTX plugin flavour guards against) is a SIGABRT.
Running the engines needs an RTX GPU: not here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from agileir.io.atomic import is_temp_file
from agileir.models import build_model, save_safetensors
from agileir.models.config import SRConfig
from agileir.models.gswa_node import gswa_nodes
from agileir.models.load import file_sha256
from conftest import randomized
from test_models import TINY_AGILEIR, TINY_SWINIR
from test_rtx_plugin import rtx_library  # noqa: F401  (session fixture: libagileir_trt_plugins_rtx.so)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["model", "model.fp16", "model.int8", "model.plugin", "model.plugin.fp16", "model.plugin.int8"]


def agileir(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "agileir", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture(scope="module", params=["agileir", "swinir"])
def rtx_export(request, rtx_library, tmp_path_factory):  # noqa: F811
    """agileir-export --fp16 --int8 --target rtx of a tiny model: ONNX variants and their RTX engines."""
    config = {"agileir": TINY_AGILEIR, "swinir": TINY_SWINIR}[request.param]
    root = tmp_path_factory.mktemp(f"rtx_{request.param}")
    ckpt = root / f"tiny_{request.param}.safetensors"
    save_safetensors(randomized(build_model(config)), ckpt)
    out = root / "export"
    r = agileir("export", str(ckpt), "-o", str(out), "--fp16", "--int8", "--target", "rtx",
                env={"AGILEIR_TRT_PLUGIN_LIB": str(rtx_library.parent)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return request.param, out, r.stdout + r.stderr


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_builds_an_rtx_engine(rtx_export, name):
    arch, out, log = rtx_export
    onnx_path, engine, sidecar_path = out / f"{name}.onnx", out / f"{name}.plan", out / f"{name}.json"
    assert engine.is_file() and sidecar_path.is_file(), log[-2000:]
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["flavour"] == "rtx" and sidecar["gpu"] is None
    assert sidecar["engine_sha256"] == file_sha256(engine) and sidecar["engine_bytes"] == engine.stat().st_size > 0
    assert sidecar["source_onnx"]["sha256"] == file_sha256(onnx_path)
    assert sidecar["precision"] == (name.split(".")[-1] if name.split(".")[-1] in ("fp16", "int8") else "fp32")
    assert sidecar["strongly_typed"] and sidecar["builder_flags"] == []
    graph = onnx.load(str(onnx_path), load_external_data=False)
    net = sidecar["network"]
    assert net["plugin_layers"] == len(gswa_nodes(graph))  # one plugin layer per GSWA node
    assert (net["plugin_layers"] > 0) == (".plugin" in name)
    assert net["attention_layers"] == net["attention_scale_layers"] == 0  # no fused attention in these forms
    quant = sum(n.op_type == "QuantizeLinear" for n in graph.graph.node)
    dequant = sum(n.op_type == "DequantizeLinear" for n in graph.graph.node)
    assert (net["quantize_layers"], net["dequantize_layers"]) == (quant, dequant)
    if name.endswith("int8"):
        assert quant > 0 and dequant >= quant  # weights: DQ only; activations: Q + DQ
    rejected = [w for w in sidecar["builder_warnings"] if "quantiz" in w.lower() or "Q/DQ" in w]
    assert not rejected, rejected
    assert not [p.name for p in out.iterdir() if is_temp_file(p)]


def test_standard_form_is_lean(rtx_export):
    """Window-space blocks: one SoftMax per head group and a network within 2.5x of the plugin form's layers
    (one window partition per block; per head group it was ~100 layers of window bookkeeping)."""
    arch, out, _ = rtx_export
    config = {"agileir": TINY_AGILEIR, "swinir": TINY_SWINIR}[arch]
    std, plug = (json.loads((out / f"{n}.json").read_text())["network"] for n in ("model", "model.plugin"))
    assert std["by_type"]["SOFTMAX"] == sum(d * h for d, h in zip(config.depths, config.num_heads))
    assert std["layers"] < 2.5 * plug["layers"]


def test_build_command_targets_and_flavour_checks(rtx_export, rtx_library, tmp_path):  # noqa: F811
    arch, out, _ = rtx_export
    if arch != "swinir":
        pytest.skip("once is enough")
    engine = tmp_path / "cc.plan"
    r = agileir("build", str(out / "model.plugin.onnx"), "-o", str(engine), "--target", "rtx",
                "--compute-capability", "8.6,89", "--min-shape", "16x16", "--opt-shape", "32x32", "--max-shape",
                "64x64", "--plugin-lib", str(rtx_library))
    assert r.returncode == 0, r.stderr[-3000:]
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    assert sidecar["target_compute_capabilities"] == ["8.6", "8.9"]
    assert sidecar["profile"]["max"] == [1, 3, 64, 64]
    # an RTX engine refused by the TensorRT backend, in one line, before any GPU is needed
    r = agileir("infer", str(engine), str(REPO / "agileir" / "calibration" / "data" / "calib_000.png"),
                "-o", str(tmp_path / "x.png"), "--backend", "tensorrt")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "TensorRT-RTX engine" in lines[0] and "--backend rtx" in lines[0]
    # its own backend needs an RTX GPU: exit 3 (this machine lacks one), one line
    r = agileir("infer", str(engine), str(REPO / "agileir" / "calibration" / "data" / "calib_000.png"),
                "-o", str(tmp_path / "x.png"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert not (tmp_path / "x.png").exists()
    # bad targets are input errors
    r = agileir("build", str(out / "model.onnx"), "-o", str(tmp_path / "bad.plan"), "--target", "rtx",
                "--compute-capability", "70")
    assert r.returncode == 2 and "unknown compute capability" in r.stderr
    r = agileir("build", str(out / "model.onnx"), "-o", str(tmp_path / "bad.plan"), "--compute-capability", "86")
    assert r.returncode == 2 and not (tmp_path / "bad.plan").exists()


# TensorRT-RTX's fused attention takes head dims 16..64: key dim 16, value dim 8 (padded to 16 in the graph)
TINY_ATTENTION = SRConfig("agileir", 2, 32, (2,), (4,), 8, 2.0, (16,))


@pytest.fixture(scope="module")
def rtx_attention_export(tmp_path_factory):
    """agileir-export --form attention --fp16 --target rtx of a tiny AgileIR: the FP32 and FP16 engines."""
    root = tmp_path_factory.mktemp("rtx_attention")
    ckpt = root / "tiny_attention.safetensors"
    save_safetensors(randomized(build_model(TINY_ATTENTION)), ckpt)
    out = root / "export"
    r = agileir("export", str(ckpt), "-o", str(out), "--form", "attention", "--fp16", "--target", "rtx")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def test_attention_form_builds_fused_attention_layers(rtx_attention_export):
    """FP16: one fused attention per head group, nothing decomposable, no MatMul/SoftMax attention; FP32: the
    same attentions, marked decomposable (no FP32 fused kernel); ONNX Runtime parity passed at export."""
    out = rtx_attention_export
    groups = sum(d * h for d, h in zip(TINY_ATTENTION.depths, TINY_ATTENTION.num_heads))
    info = json.loads((out / "export.json").read_text())
    assert info["forms"]["attention"]["validation"]["passed"]
    assert info["variants"]["fp16"]["attention"]["validation"]["psnr_db"] >= 50
    fp16 = json.loads((out / "model.attention.fp16.json").read_text())["network"]
    fp32 = json.loads((out / "model.attention.json").read_text())["network"]
    assert fp16["attention_layers"] == fp32["attention_layers"] == groups
    assert fp16["by_type"]["ATTENTION_OUTPUT"] == groups and "SOFTMAX" not in fp16["by_type"]
    # the parser's own Q and K scaling (sqrt(scale): constant, cast, multiply), also at scale 1
    assert fp16["attention_scale_layers"] == fp32["attention_scale_layers"] == 6 * groups
    assert fp16["decomposable_attentions"] == 0 and fp32["decomposable_attentions"] == groups
    assert fp16["by_type"].get("MATRIX_MULTIPLY", 0) == 2 * sum(TINY_ATTENTION.depths)  # the MLPs only
    assert fp16["by_type"]["ACTIVATION"] == 2 * sum(TINY_ATTENTION.depths)  # ReLU before proj, one Gelu per MLP
