"""The OpenVINO runner (agileir.runtime.openvino) on tiny exported models, and the --backend auto rule.

Parity is against ONNX Runtime on the same file, on crops of the bundled calibration images (real photos), as
PSNR of the 8-bit images: FP32 with the f32 hint >= 60 dB (the FP32 validation threshold), the FP16 variant
>= 55 dB. Skipped when openvino is not installed (the `openvino` extra; CI installs it).
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'agileir[openvino]')")

from agileir.cli import main  # noqa: E402
from agileir.export.onnx_export import annotate, export_onnx  # noqa: E402
from agileir.io.images import to_uint8  # noqa: E402
from agileir.quality.metrics import psnr  # noqa: E402
from agileir.runtime import load_runner  # noqa: E402
from agileir.runtime.base import DeviceUnavailable  # noqa: E402
from conftest import saved_model  # noqa: E402
from test_base_install import run_without  # noqa: E402
from test_models import TINY_AGILEIR  # noqa: E402

X86 = platform.machine().lower() in ("x86_64", "amd64")


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(to_uint8(a), to_uint8(b), peak=255.0)


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny AgileIR x2: standard and attention forms, the standard form's FP16 variant, and a graph with the
    plugin form's custom GSWA node, annotated as agileir-export does."""
    from agileir.calibration import variants

    folder = tmp_path_factory.mktemp("ov")
    model, _ = saved_model(folder, TINY_AGILEIR, randomize=True)
    model.fuse()
    forms = {form: export_onnx(model, form) for form in ("standard", "attention")}
    graphs = {"standard": forms["standard"], "attention": forms["attention"],
              "standard-fp16": variants.fp16_forms({"standard": forms["standard"]})["standard"]}
    paths = {}
    for key, proto in graphs.items():
        annotate(proto, {"scale": 2, "window": TINY_AGILEIR.window_size, "form": key.split("-")[0]})
        paths[key] = folder / f"{key}.onnx"
        onnx.save(proto, str(paths[key]))
    paths["plugin"] = folder / "plugin.onnx"
    onnx.save(_gswa_graph(), str(paths["plugin"]))
    return paths


def _gswa_graph() -> onnx.ModelProto:
    """One agileir::GroupShiftedWindowAttention node (the plugin form's), with agileir's metadata."""
    node = helper.make_node("GroupShiftedWindowAttention", ["lr", "w", "b", "t"], ["sr"], domain="agileir",
                            window_size=8, shift_size=0, key_dim=1, scale=1.0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor(n, TensorProto.FLOAT, [1], [0.0]) for n in "wbt"])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("agileir", 1)])
    annotate(proto, {"scale": 2, "window": 8, "form": "plugin"})
    return proto


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """(1, 3, 30, 37) crop of a bundled calibration photo (odd size: the graph pads to the window itself)."""
    from agileir.calibration.dataset import load_images

    rgb = load_images()[0].rgb[:30, :37]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


@pytest.mark.parametrize("key,min_db", [("standard", 60.0), ("attention", 60.0), ("standard-fp16", 55.0)])
def test_openvino_matches_onnxruntime(models, photo, tmp_path, key, min_db):
    reference = load_runner(models[key], backend="onnxruntime-cpu", echo=quiet)
    runner = load_runner(models[key], backend="openvino", engine_cache=str(tmp_path), echo=quiet)
    assert runner.backend == "openvino" and runner.precision_hint == "f32" and "OpenVINO CPU" in runner.description
    batch = np.concatenate([photo, photo[:, :, ::-1, ::-1]])  # batch of 2
    want, got = reference(batch), runner(batch)
    assert got.shape == (2, 3, 60, 74)
    assert psnr8(got, want) >= min_db
    if key != "standard-fp16":
        assert float(np.abs(got - want).max()) < 1e-3


def test_precision_hint_is_explicit(models, photo, tmp_path):
    f32 = load_runner(models["standard"], backend="openvino", engine_cache=str(tmp_path), echo=quiet)
    bf16 = load_runner(models["standard"], backend="openvino", ov_precision="bf16", engine_cache=str(tmp_path),
                       echo=quiet)
    assert f32.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    assert bf16.precision_hint == "bf16" and "bf16 hint" in bf16.description
    a, b = f32(photo), bf16(photo)
    assert np.isfinite(b).all() and 30.0 <= psnr8(a, b)  # bf16 keeps 8 mantissa bits: close, not equal
    with pytest.raises(ValueError, match="precision hint"):
        load_runner(models["standard"], backend="openvino", ov_precision="int4", echo=quiet)


def test_compiled_model_cache_is_keyed_like_engines(models, tmp_path):
    runner = load_runner(models["standard"], backend="openvino", engine_cache=str(tmp_path), echo=quiet)
    entry = runner.cache_entry
    key = json.loads((entry / "key.json").read_text())
    assert entry.parent == tmp_path and entry.name.startswith("openvino-")
    assert key["precision_hint"] == "f32" and key["device"] == "CPU" and len(key["onnx_sha256"]) == 64
    blobs = sorted(p.name for p in entry.iterdir() if p.name != "key.json")
    assert blobs, "OpenVINO wrote no compiled model into the cache entry"
    load_runner(models["standard"], backend="openvino", engine_cache=str(tmp_path), echo=quiet)
    assert sorted(p.name for p in entry.iterdir() if p.name != "key.json") == blobs  # reused, not recompiled
    bf16 = load_runner(models["standard"], backend="openvino", ov_precision="bf16", engine_cache=str(tmp_path),
                       echo=quiet)
    assert bf16.cache_entry != entry  # another key, another entry


def test_plugin_form_is_refused_with_its_reason(models, photo, tmp_path):
    with pytest.raises(ValueError, match="OpenVINO CPU extension"):
        load_runner(models["plugin"], backend="openvino", echo=quiet)
    img = tmp_path / "in.png"
    Image.fromarray(to_uint8(photo[0].transpose(1, 2, 0))).save(img)
    r = CliRunner().invoke(main, ["infer", str(models["plugin"]), str(img), "--backend", "openvino", "-o",
                                  str(tmp_path / "out.png")])
    assert r.exit_code == 2, r.output
    assert [x for x in r.stderr.splitlines() if x.startswith("error:")] and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("device", ["NPU", "GPU.3", "cuda"])
def test_missing_device_exits_3_naming_openvinos_devices(models, photo, tmp_path, device):
    import openvino

    if device in openvino.Core().available_devices:
        pytest.skip(f"this machine has {device}")
    with pytest.raises(DeviceUnavailable):
        load_runner(models["standard"], backend="openvino", device=device, echo=quiet)
    img = tmp_path / "in.png"
    Image.fromarray(to_uint8(photo[0].transpose(1, 2, 0))).save(img)
    r = CliRunner().invoke(main, ["infer", str(models["standard"]), str(img), "--backend", "openvino", "--device",
                                  device, "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 3, r.output
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and ("CPU" in errors[0] or "CUDA" in errors[0]), r.stderr
    assert not (tmp_path / "out.png").exists()


def test_infer_cli_openvino_matches_onnxruntime(models, photo, tmp_path):
    img = tmp_path / "in.png"
    Image.fromarray(to_uint8(photo[0].transpose(1, 2, 0))).save(img)
    outs = {}
    for backend in ("openvino", "onnxruntime"):
        outs[backend] = tmp_path / f"{backend}.png"
        r = CliRunner().invoke(main, ["infer", str(models["standard"]), str(img), "--backend", backend, "-o",
                                      str(outs[backend]), "--engine-cache", str(tmp_path / "cache")])
        assert r.exit_code == 0, r.output
    a, b = (np.asarray(Image.open(p), dtype=np.float64) for p in outs.values())
    assert a.shape == (60, 74, 3) and psnr(a, b, peak=255.0) >= 60.0


@pytest.mark.skipif(not X86, reason="the auto rule picks OpenVINO on x86 CPUs only")
def test_backend_auto_picks_openvino_on_x86_and_says_so(models):
    lines = []
    runner = load_runner(models["standard"], echo=lines.append, activate=False)
    assert runner.backend == "openvino"
    assert any(x.startswith("backend: openvino (auto:") and "faster" in x for x in lines), lines
    lines.clear()
    assert load_runner(models["standard"], device="cpu", echo=lines.append, activate=False).backend == "openvino"
    plugin = load_runner(models["plugin"], backend="auto", echo=lines.append, activate=False)
    assert plugin.backend == "onnxruntime" and any("plugin form" in x for x in lines), lines


def test_openvino_runs_without_torch_or_onnxruntime(models, photo, tmp_path):
    """The deploy install `.[openvino]`: no PyTorch, no ONNX Runtime."""
    img, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(to_uint8(photo[0].transpose(1, 2, 0))).save(img)
    code = (f"sys.argv = ['agileir', 'infer', {str(models['standard'])!r}, {str(img)!r}, '-o', {str(out)!r}, "
            f"'--backend', 'openvino', '--engine-cache', {str(tmp_path / 'cache')!r}]\n"
            "from agileir.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'imported'\n"
            "    raise")
    done = run_without(("torch", "torchvision", "onnxruntime", "onnxruntime_extensions"), code=code)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (74, 60)


def test_nncf_peer_quantizes_the_same_graph(models):
    """`agileir calibrate`'s nncf-int8 row: an ONNX Q/DQ graph keeping agileir's metadata, close to FP32 in ONNX
    Runtime, and runnable by OpenVINO."""
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'agileir[nncf]')")
    from agileir.calibration.bits import qdq_counts
    from agileir.calibration.dataset import load_images
    from agileir.calibration.peers import run_peer

    fp32 = onnx.load(str(models["standard"]))
    result = run_peer("nncf-int8", fp32, [im.rgb for im in load_images()[:2]])
    assert result.skipped is None, result.skipped
    assert result.tool.startswith("nncf ") and result.settings["preset"] == "PERFORMANCE"
    assert qdq_counts(result.graph)["quantize_linear"] > 0
    path = models["standard"].parent / "nncf.onnx"
    onnx.save(result.graph, str(path))
    x = np.random.default_rng(0).random((1, 3, 20, 28), dtype=np.float32)
    want = load_runner(models["standard"], backend="onnxruntime-cpu", echo=quiet)(x)
    assert psnr(np.clip(load_runner(path, backend="onnxruntime-cpu", echo=quiet)(x), 0, 1), np.clip(want, 0, 1)) >= 30
    runner = load_runner(path, backend="openvino", echo=quiet)
    assert runner.precision == "int8" and np.isfinite(runner(x)).all()


def test_triton_openvino_model_config_parses():
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient (the serve extra)")
    from google.protobuf import text_format

    from agileir.cluster.triton_repo import OPENVINO_EXTRA, model_config

    config = text_format.Parse(model_config("agileir_x4_openvino", "openvino", 8, 1, "KIND_CPU", (64, 64),
                                            extra=OPENVINO_EXTRA), pb.ModelConfig())
    assert config.backend == "openvino" and config.platform == "" and config.default_model_filename == "model.onnx"
    assert config.parameters["PERFORMANCE_HINT"].string_value == "LATENCY"
    assert list(config.input[0].dims) == [3, -1, -1]


def test_runners_released_out_of_order_leave_signals_working(models):
    """Each runner had its own openvino.Core; compiling installs an alternate signal stack on the thread, and Cores
    destroyed out of order left it pointing at freed memory: the next Ctrl-C (Python's handlers run on that stack)
    was a segmentation fault (exit -11). Checked in a child process, so a crash fails this test, not the run."""
    import subprocess
    import sys

    code = f"""
import gc, signal
from agileir.runtime.openvino import OpenVINORunner
a = OpenVINORunner({str(models["standard"])!r}); a.activate()
b = OpenVINORunner({str(models["standard"])!r}); b.activate()
a.deactivate(); del a; gc.collect()
b.deactivate(); del b; gc.collect()
try:
    signal.raise_signal(signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted cleanly")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "interrupted cleanly" in r.stdout, (r.returncode, r.stderr[-2000:])
