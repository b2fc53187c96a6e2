"""Triton: the model repository's configs parse as Triton's ModelConfig; the ONNX Runtime CPU runner served
through PyTriton on 127.0.0.1 answers HTTP and gRPC with agileir-infer's pixels, refuses a malformed request
and shuts down cleanly."""
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from agileir.models import build_model, save_safetensors
from test_models import TINY_SWINIR


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("triton")
    torch.manual_seed(0)
    save_safetensors(build_model(TINY_SWINIR), root / "tiny.safetensors")
    r = subprocess.run([sys.executable, "-m", "agileir", "export", str(root / "tiny.safetensors"), "-o",
                        str(root / "exp"), "--form", "standard", "--fp16"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(0)
    PILImage.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(root / "img.png")
    return root


def test_repository_configs_parse_as_triton_model_config(export_dir, tmp_path):
    pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient (agileir[serve])")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from agileir.cluster.triton_repo import write_repository

    exp = tmp_path / "exp"
    exp.mkdir()
    for f in ("model.onnx", "model.fp16.onnx", "export.json"):  # real graphs: triton checks them against export.json
        (exp / f).write_bytes((export_dir / "exp" / f).read_bytes())
    (exp / "model.plugin.onnx").write_bytes(b"")  # skipped with a reason
    (exp / "model.plugin.fp16.plan").write_bytes(b"engine bytes")
    (exp / "model.plugin.fp16.json").write_text(json.dumps({
        "format": "agileir-engine/1", "tensorrt_version": "10.9", "gpu": {"name": "NVIDIA H200"},
        "precision": "fp16", "form": "plugin", "plugin": {"impl": "library"}, "scale": 3,
        "profile": {"min": [1, 3, 1, 1], "opt": [1, 3, 128, 128], "max": [4, 3, 512, 512]}}))
    (exp / "model.fp16.plan").write_bytes(b"rtx engine bytes")  # TensorRT-RTX: not for tensorrt_plan
    (exp / "model.fp16.json").write_text(json.dumps({
        "format": "agileir-engine/1", "flavour": "rtx", "tensorrt_version": "1.7.1", "gpu": None,
        "precision": "fp16", "form": "standard", "plugin": {"impl": None}, "scale": 3,
        "profile": {"min": [1, 3, 1, 1], "opt": [1, 3, 128, 128], "max": [1, 3, 512, 512]}}))
    lib = tmp_path / "libagileir_trt_plugins.so"
    lib.write_bytes(b"so")
    plan = write_repository(exp, tmp_path / "repo", plugin_library=lib)
    repo = tmp_path / "repo"
    assert sorted(m.name for m in plan.models) == ["agileir_x3", "agileir_x3_fp16", "agileir_x3_trt_plugin_fp16"]
    assert [f for f, _ in plan.skipped] == ["model.plugin.onnx", "model.fp16.plan"]
    assert "TensorRT-RTX" in dict(plan.skipped)["model.fp16.plan"]
    for m in plan.models:
        c = text_format.Parse((repo / m.name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert c.name == m.name and list(c.input[0].dims) == [3, -1, -1] and c.output[0].name == "sr"
        assert c.HasField("dynamic_batching") and c.model_warmup[0].inputs["lr"].zero_data
        trt = m.backend == "tensorrt"
        assert c.platform == ("tensorrt_plan" if trt else "onnxruntime_onnx")
        assert c.instance_group[0].kind == (model_config_pb2.ModelInstanceGroup.KIND_GPU if trt else
                                            model_config_pb2.ModelInstanceGroup.KIND_CPU)
        assert (repo / m.name / "1" / ("model.plan" if trt else "model.onnx")).is_file()
        assert c.max_batch_size == (4 if trt else 8)
    assert (repo / "plugins" / lib.name).read_bytes() == b"so"
    assert "--backend-config=tensorrt,plugins=/models/plugins/libagileir_trt_plugins.so" in \
        (repo / "README.md").read_text()


def test_served_runner_matches_infer_over_http_and_grpc(export_dir, tmp_path):
    pytest.importorskip("pytriton", reason="needs nvidia-pytriton (pip install 'agileir[serve]')")
    pytest.importorskip("tritonclient.http", reason="needs tritonclient[all] (pip install 'agileir[serve]')")
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    from agileir.io.images import read_image, write_image
    from agileir.runtime import load_runner
    from agileir.cluster.serve import free_local_ports, start_server

    onnx = export_dir / "exp" / "model.onnx"
    ref = subprocess.run([sys.executable, "-m", "agileir", "infer", str(onnx), str(export_dir / "img.png"), "-o",
                          str(tmp_path / "ref.png"), "--backend", "onnxruntime-cpu"], capture_output=True, text=True,
                         timeout=120)
    assert ref.returncode == 0, ref.stderr
    x = read_image(export_dir / "img.png").to_rgb().transpose(2, 0, 1)[None].copy()
    http_port, grpc_port, metrics_port = free_local_ports(3)
    runner = load_runner(onnx, backend="onnxruntime-cpu")
    server = start_server(runner, "agileir_x3", http_port, grpc_port, metrics_port)
    try:
        outputs = {}
        for kind, mod, port in (("http", httpclient, http_port), ("grpc", grpcclient, grpc_port)):
            client = mod.InferenceServerClient(f"127.0.0.1:{port}")
            try:
                assert client.is_model_ready("agileir_x3")
                inp = mod.InferInput("lr", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                outputs[kind] = client.infer("agileir_x3", [inp]).as_numpy("sr")
                bad = mod.InferInput("lr", [1, 2, 5, 5], "FP32")  # two channels
                bad.set_data_from_numpy(np.zeros((1, 2, 5, 5), np.float32))
                with pytest.raises(InferenceServerException, match="unexpected shape|N x 3 x H x W"):
                    client.infer("agileir_x3", [bad])
            finally:
                client.close()
    finally:
        server.stop()
    for kind, sr in outputs.items():
        write_image(tmp_path / f"{kind}.png", np.clip(sr[0].transpose(1, 2, 0), 0, 1))
        assert (tmp_path / f"{kind}.png").read_bytes() == (tmp_path / "ref.png").read_bytes(), kind
    with socket.socket() as s:  # the server is gone: its port is free again
        s.bind(("127.0.0.1", http_port))


def test_stub_library_env_puts_this_interpreters_libpython_first():
    import sysconfig

    from agileir.cluster.serve import stub_library_env

    env = {"LD_LIBRARY_PATH": "/opt/x"}
    libdir = stub_library_env(env)
    if libdir is None:
        pytest.skip("this interpreter has no shared libpython")
    assert libdir == sysconfig.get_config_var("LIBDIR") and env["LD_LIBRARY_PATH"] == f"{libdir}:/opt/x"
    assert stub_library_env(env) == libdir and env["LD_LIBRARY_PATH"] == f"{libdir}:/opt/x"  # idempotent
