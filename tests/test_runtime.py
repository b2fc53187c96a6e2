"""Runners (PyTorch / ONNX Runtime / TensorRT), validation, benchmark, engine build.

CPU tests use the tiny models of test_models and FP16 / INT8 variants made by agileir.calibration. Tests
marked `trt` need TensorRT and a GPU and skip here with the reason.
"""
import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image as PILImage

from agileir.cli import main
from agileir.runtime.tensorrt.builder import (BuildOptions, ShapeProfile, network_typing, parse_shape, trtexec_command)
from agileir.export.onnx_export import annotate, export_onnx
from agileir.models.load import file_sha256
from agileir.runtime import Runner, RunnerSpec, load_runner
from agileir.runtime.artifacts import onnx_precision
from agileir.quality.metrics import psnr
from polygraphy_compare import compare_runners
from agileir.runtime.tensorrt.env import EngineMismatch, TensorRTUnavailable, require_gpu, require_tensorrt
from agileir.runtime.tensorrt.runner import check_engine
from agileir.io.samples import sample_image
from conftest import saved_model
from test_models import TINY_AGILEIR

REPO = Path(__file__).resolve().parent.parent


def tensorrt_status() -> str | None:
    """None when TensorRT and a GPU are usable, else why not."""
    try:
        require_tensorrt()
        require_gpu()
    except TensorRTUnavailable as e:
        return str(e)
    return None


TRT_MISSING = tensorrt_status()
needs_trt = pytest.mark.skipif(TRT_MISSING is not None, reason=f"TensorRT tests: {TRT_MISSING}")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny AgileIR x2 checkpoint, its two ONNX forms and their FP16 / INT8 variants (agileir.calibration),
    annotated like agileir-export does. Keys: checkpoint, standard, plugin, standard-fp16, plugin-int8, ..."""
    from agileir.calibration import variants
    from agileir.calibration.dataset import load_images

    folder = tmp_path_factory.mktemp("artifacts")
    model, ckpt = saved_model(folder, TINY_AGILEIR, randomize=True)
    model.fuse()
    forms = {form: export_onnx(model, form) for form in ("standard", "plugin")}
    calibration = variants.calibrate(forms["standard"], load_images()[:2], "max")
    graphs = {("fp32", f): p for f, p in forms.items()}
    graphs |= {("fp16", f): p for f, p in variants.fp16_forms(forms).items()}
    graphs |= {("int8", f): p for f, p in variants.int8_forms(forms, calibration).items()}
    files = {("fp32", "standard"): "model.onnx", ("fp32", "plugin"): "model.plugin.onnx"} | variants.FILES
    paths = {"checkpoint": ckpt}
    for (precision, form), proto in graphs.items():
        annotate(proto, {"scale": 2, "window": TINY_AGILEIR.window_size, "form": form, "precision": precision,
                         "source_checkpoint": {"file": ckpt.name, "sha256": file_sha256(ckpt)}})
        path = folder / files[(precision, form)]
        onnx.save(proto, str(path))
        paths[form if precision == "fp32" else f"{form}-{precision}"] = path
    return paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """BasicSR layout, x2: HR/*.png and LR_bicubic/X2/*x2.png, two small images."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "HR").mkdir()
    (root / "LR_bicubic" / "X2").mkdir(parents=True)
    for i, (w, h) in enumerate([(52, 40), (46, 34)]):
        hr = PILImage.fromarray((sample_image(w, h, seed=i) * 255).round().astype(np.uint8))
        hr.save(root / "HR" / f"img{i}.png")
        hr.resize((w // 2, h // 2), PILImage.BICUBIC).save(root / "LR_bicubic" / "X2" / f"img{i}x2.png")
    return root


# -- runners --------------------------------------------------------------------------------------


def test_pytorch_and_onnxruntime_runners_agree(artifacts):
    """Through Polygraphy's Comparator: both ONNX forms vs the PyTorch reference, dynamic batch and H x W."""
    runners = [load_runner(artifacts["checkpoint"], activate=False),
               load_runner(artifacts["standard"], backend="onnxruntime", activate=False),
               load_runner(artifacts["plugin"], activate=False)]  # auto: the plugin form runs in ONNX Runtime
    assert [r.backend for r in runners] == ["pytorch", "onnxruntime", "onnxruntime"]
    rng = np.random.default_rng(0)
    feeds = [{"lr": rng.random((1, 3, 19, 26), dtype=np.float32)}, {"lr": rng.random((2, 3, 16, 16), dtype=np.float32)}]
    passed, record = compare_runners(runners, feeds, min_psnr_db=60.0)
    assert passed, record
    assert len(record) == 4 and min(r["psnr_db"] for r in record) >= 60.0
    assert not any(r.is_active for r in runners)


def test_runner_interface(artifacts):
    from agileir.io.images import Image
    from agileir.upscale.arrays import apply_to_images

    x = np.random.default_rng(1).random((1, 3, 12, 17), dtype=np.float32)
    with load_runner(artifacts["standard"], activate=False) as runner:
        assert runner.is_active and runner.precision == "fp32" and runner.scale == 2
        out = runner.infer({"lr": x})["sr"]
        assert out.shape == (1, 3, 24, 34) and out.dtype == np.float32
        assert runner.last_inference_time() > 0
        assert np.array_equal(runner.upscale(x), out) and np.array_equal(runner(x), out)
        result = apply_to_images(runner.upscale, [Image(x[0].transpose(1, 2, 0), None, 8, "RGB")], runner.scale)[0]
        assert result.rgb.shape == (24, 34, 3)
        with pytest.raises(ValueError, match="expects one input 'lr'"):
            runner.infer({"x": x})
    assert not runner.is_active


def test_tiling_batching_and_padding_through_the_runner(artifacts):
    runner = load_runner(artifacts["standard"])
    # Window multiples (8): the whole-image run needs no padding, so only tile seams differ.
    batch = np.ascontiguousarray(sample_image(64, 48).transpose(2, 0, 1)[None])
    whole = runner.upscale(batch)

    runner.max_shape = (1, 64, 64)  # the whole image fits: no tiling, bit-identical
    assert np.array_equal(runner.upscale(batch), whole)

    runner.max_shape = (1, 32, 32)  # like an engine profile: forces 2 x 3 tiles of 32, overlap 16
    tiled = runner.upscale(batch)
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) >= 40.0

    runner.max_shape = (1, 64, 64)  # batch 2 beyond max batch 1 is split
    two = np.concatenate([batch, batch[:, :, ::-1].copy()])
    split = runner.upscale(two)
    runner.max_shape = None
    np.testing.assert_allclose(split, runner.upscale(two), atol=1e-5)

    runner.min_shape = (1, 16, 16)  # below the profile minimum: edge-padded, cropped back
    small = runner.upscale(batch[:, :, :9, :11])
    assert small.shape == (1, 3, 18, 22) and np.isfinite(small).all()
    assert np.array_equal(runner.upscale(batch), whole)  # a minimum below the image changes nothing
    runner.deactivate()


def test_precision_is_read_from_the_graph(artifacts):
    for key in ("standard", "plugin", "standard-fp16", "plugin-fp16", "standard-int8", "plugin-int8"):
        expected = key.split("-")[1] if "-" in key else "fp32"
        assert onnx_precision(onnx.load(str(artifacts[key]))) == expected, key

    def graph(nodes, dtype, inits=()):
        x = helper.make_tensor_value_info("lr", dtype, [1, 3, 4, 4])
        y = helper.make_tensor_value_info("sr", dtype, [1, 3, 4, 4])
        return helper.make_model(helper.make_graph(nodes, "g", [x], [y], list(inits)))

    fp16 = graph([helper.make_node("Identity", ["lr"], ["sr"])], TensorProto.FLOAT16)
    assert onnx_precision(fp16) == "fp16"
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    qdq = graph([helper.make_node("QuantizeLinear", ["lr", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["sr"])], TensorProto.FLOAT, inits)
    assert onnx_precision(qdq) == "int8"


def test_infer_backend_override(artifacts, tmp_path):
    lr = tmp_path / "lr.png"
    PILImage.fromarray((sample_image(20, 14) * 255).astype(np.uint8)).save(lr)
    r = CliRunner().invoke(main, ["infer", str(artifacts["standard"]), str(lr), "-o", str(tmp_path / "o.png"),
                                  "--backend", "onnxruntime-cpu"])
    assert r.exit_code == 0, r.output
    assert PILImage.open(tmp_path / "o.png").size == (40, 28)
    r = CliRunner().invoke(main, ["infer", str(artifacts["standard"]), str(lr), "--backend", "pytorch"])
    assert r.exit_code == 2 and "cannot run a onnx file" in r.output, r.output
    # tensorrt on an .onnx builds a cached engine (tests/test_engine_cache.py); without TensorRT or a GPU: exit 3
    r = CliRunner().invoke(main, ["infer", str(artifacts["standard"]), str(lr), "-o", str(tmp_path / "t.png"),
                                  "--backend", "tensorrt", "--engine-cache", str(tmp_path / "cache")])
    assert r.exit_code in (0, 3), r.output
    if r.exit_code == 3:
        assert len([x for x in r.stderr.splitlines() if x.startswith("error:")]) == 1, r.stderr
        assert not (tmp_path / "t.png").exists()


# -- validate -------------------------------------------------------------------------------------


def test_validate_passes_on_a_faithful_artifact(artifacts, dataset, tmp_path):
    report_path = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["validate", str(artifacts["plugin"]), "--dataset", str(dataset), "--scale", "2",
                                  "--json", str(report_path)])
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["precision"] == "fp32" and report["backend"] == "onnxruntime"
    assert report["criterion"]["threshold"] == 60.0 and report["criterion"]["value"] >= 60.0
    assert report["reference"]["matches_artifact"] is True and len(report["images"]) == 2
    for row in report["images"]:
        assert row["psnr_vs_reference"] >= 60.0 and abs(row["delta_psnr"]) < 0.01 and 0 < row["ssim"] <= 1


@pytest.mark.parametrize("variant, metric, threshold", [("standard-fp16", "psnr_vs_reference", 55.0),
                                                       ("plugin-int8", "delta_psnr", -0.10)])
def test_validate_judges_variants_by_their_precision(artifacts, dataset, tmp_path, variant, metric, threshold):
    report_path = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["validate", str(artifacts[variant]), "--dataset", str(dataset), "--scale", "2",
                                  "--json", str(report_path)])
    assert r.exit_code == 0, r.output
    report = json.loads(report_path.read_text())
    assert report["precision"] == variant.split("-")[1]
    assert (report["criterion"]["metric"], report["criterion"]["threshold"]) == (metric, threshold)
    assert report["criterion"]["value"] >= threshold


def test_validate_fails_on_a_corrupted_artifact(artifacts, dataset, tmp_path):
    proto = onnx.load(str(artifacts["standard"]))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    init = next(i for i in proto.graph.initializer if i.name in conv_weights)
    w = onnx.numpy_helper.to_array(init).copy()
    w.flat[0] += 0.5  # one weight of one conv
    init.CopyFrom(onnx.numpy_helper.from_array(w, init.name))
    bad = tmp_path / "corrupted.onnx"
    onnx.save(proto, str(bad))
    report_path = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["validate", str(bad), "--dataset", str(dataset), "--scale", "2",
                                  "--reference", str(artifacts["checkpoint"]), "--json", str(report_path)])
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output
    report = json.loads(report_path.read_text())
    assert not report["passed"] and report["criterion"]["value"] < 60.0


def test_validate_input_errors(artifacts, dataset, tmp_path):
    cases = [([str(artifacts["standard"]), "--dataset", str(dataset), "--scale", "3"], "LR_bicubic/X3"),
             ([str(tmp_path / "none.onnx"), "--dataset", str(dataset), "--scale", "2"], "not found")]
    lonely = tmp_path / "lonely.onnx"  # its source checkpoint is not beside it
    shutil.copy(artifacts["standard"], lonely)
    cases.append(([str(lonely), "--dataset", str(dataset), "--scale", "2"], "pass --reference"))
    for args, message in cases:
        r = CliRunner().invoke(main, ["validate", *args])
        assert r.exit_code == 2 and message in r.output, r.output


# -- bench ----------------------------------------------------------------------------------------


def test_bench_writes_json(artifacts, tmp_path):
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", str(artifacts["checkpoint"]), str(artifacts["standard"]), "--sizes", "16,24",
                                  "--runs", "2", "--warmup", "1", "--threads", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["settings"]["sizes"] == [16, 24] and "packages" in data["host"]
    rows = data["results"]
    onnx_backend = RunnerSpec(str(artifacts["standard"])).resolved_backend()  # auto: agileir.runtime.auto's rule
    assert [(row["backend"], row["input"][2]) for row in rows] == [("pytorch", 16), ("pytorch", 24),
                                                                   (onnx_backend, 16), (onnx_backend, 24)]
    for row in rows:
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] and row["images_per_s"] > 0
        assert row["output_mpix_per_s"] == pytest.approx(row["input"][2] ** 2 * 4 / 1e6 * 1e3 / lat["median"])
        assert row["peak_rss_mib"] > 10 and row["precision"] == "fp32"
    r = CliRunner().invoke(main, ["bench", str(artifacts["standard"]), "--sizes", "a,b"])
    assert r.exit_code == 2


# -- engine build without TensorRT ------------------------------------------------------------------


def test_network_typing_follows_the_graph():
    assert network_typing("fp32", None, 10) == (True, [])
    assert network_typing("fp16", None, 10) == (True, [])
    assert network_typing("int8", None, 11) == (True, [])
    assert network_typing("fp32", "fp16", 10) == (False, ["FP16"])  # the one weakly typed case
    with pytest.raises(ValueError, match="TensorRT 11 builds only strongly typed"):
        network_typing("fp32", "fp16", 11)
    with pytest.raises(ValueError, match="cannot be built as int8"):
        network_typing("fp32", "int8", 10)


def test_tensorrt_8_builds_by_builder_flags_not_strong_typing():
    """TensorRT 8.5/8.6 (JetPack 5.1/6.0) have no strongly typed networks: an FP16 graph needs the FP16 flag, a Q/DQ
    graph the INT8 flag, and the trtexec line printed for a --compat jetpack5 export says so."""
    from agileir.deploy.engines import _target_major

    assert network_typing("fp32", None, 8) == (False, [])
    assert network_typing("fp16", None, 8) == (False, ["FP16"])
    assert network_typing("int8", None, 8) == (False, ["INT8"])
    assert network_typing("fp32", "fp16", 8) == (False, ["FP16"])
    with pytest.raises(ValueError, match="cannot be built as int8"):
        network_typing("fp32", "int8", 8)
    cmd = trtexec_command("m.int8.onnx", "m.int8.plan", graph_precision="int8", tensorrt_major=8)
    assert "--stronglyTyped" not in cmd and "--int8" in cmd
    assert _target_major({"compat": {"target": "jetpack5", "tensorrt": "8.5.2"}}) == 8
    assert _target_major({"compat": {"target": "latest", "tensorrt": None}}) == 10 and _target_major({}) == 10


def test_shape_profile_and_trtexec_command():
    assert parse_shape("128x96") == (1, 3, 128, 96) and parse_shape("2x3x64x64") == (2, 3, 64, 64)
    for bad in ("64", "1x3x0x4", "axb"):
        with pytest.raises(ValueError):
            parse_shape(bad)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ShapeProfile((1, 3, 64, 64), (1, 3, 32, 32), (1, 3, 128, 128))
    options = BuildOptions(ShapeProfile((1, 3, 8, 8), (1, 3, 64, 64), (2, 3, 128, 128)), workspace_mib=1024,
                           optimization_level=4, timing_cache=Path("t.cache"))
    cmd = trtexec_command("m.plugin.onnx", "e.plan", options, "fp32", "plugin", plugin_library="lib/x.so")
    assert cmd[:3] == ["trtexec", "--onnx=m.plugin.onnx", "--saveEngine=e.plan"]
    for flag in ("--minShapes=lr:1x3x8x8", "--optShapes=lr:1x3x64x64", "--maxShapes=lr:2x3x128x128",
                 "--stronglyTyped", "--dynamicPlugins=lib/x.so", "--memPoolSize=workspace:1024M",
                 "--builderOptimizationLevel=4", "--timingCacheFile=t.cache"):
        assert flag in cmd
    weak = trtexec_command("m.onnx", "e.plan", BuildOptions(precision="fp16"), "fp32")
    assert "--fp16" in weak and "--stronglyTyped" not in weak and not any("dynamicPlugins" in c for c in weak)


@pytest.mark.skipif(TRT_MISSING is None, reason="TensorRT is available here: the build is tested by the trt tests")
def test_build_without_tensorrt_exits_3_with_the_trtexec_command(artifacts, tmp_path):
    r = CliRunner().invoke(main, ["build", str(artifacts["plugin"]), "-o", str(tmp_path / "e.plan"),
                                  "--max-shape", "256x256"])
    assert r.exit_code == 3, r.output
    assert re.search(r"trtexec --onnx=\S+model\.plugin\.onnx --saveEngine=\S+e\.plan", r.output)
    assert "--maxShapes=lr:1x3x256x256" in r.output and "--dynamicPlugins=" in r.output
    assert not (tmp_path / "e.plan").exists()
    r = CliRunner().invoke(main, ["build", str(artifacts["standard"]), "--print-trtexec"])
    assert r.exit_code == 0 and r.output.startswith("trtexec --onnx=") and "--stronglyTyped" in r.output
    for args in (["--max-shape", "12"], ["--min-shape", "64x64", "--opt-shape", "32x32"], ["-o", "e.bin"]):
        r = CliRunner().invoke(main, ["build", str(artifacts["standard"]), *args])
        assert r.exit_code == 2, (args, r.output)
    r = CliRunner().invoke(main, ["build", str(tmp_path / "missing.onnx")])
    assert r.exit_code == 2


def test_engine_sidecar_and_compatibility_checks(artifacts, tmp_path, monkeypatch):
    info = {"tensorrt_version": "10.13.0.35", "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"},
            "plugin": {"impl": "library", "library": "libagileir_trt_plugins.so"}}
    here = {"name": "NVIDIA H100", "compute_capability": "9.0"}
    check_engine(info, "10.13.0.35", here, Path("lib.so"))
    with pytest.raises(EngineMismatch, match="built with TensorRT 10.13.0.35 but TensorRT 11.1.0 is installed"):
        check_engine(info, "11.1.0", here, Path("lib.so"))
    with pytest.raises(EngineMismatch, match="compute capability 9.0"):
        check_engine(info, "10.13.0.35", {"name": "Orin", "compute_capability": "8.7"}, Path("lib.so"))
    with pytest.raises(EngineMismatch, match="needs the GSWA plugin library"):
        check_engine(info, "10.13.0.35", here, None)

    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not an engine")
    lr = tmp_path / "lr.png"
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(lr)
    r = CliRunner().invoke(main, ["infer", str(plan), str(lr)])
    assert r.exit_code == 2 and "engine.json not found beside engine.plan" in r.output, r.output
    if TRT_MISSING is not None:  # a valid sidecar, but this machine cannot run engines
        (tmp_path / "engine.json").write_text(json.dumps({
            "format": "agileir-engine/1", "scale": 2, "precision": "fp32", "form": "standard",
            "tensorrt_version": "10.13.0.35", "profile": {"min": [1, 3, 1, 1], "max": [1, 3, 64, 64]},
            "gpu": here, "plugin": {"impl": None}}))
        r = CliRunner().invoke(main, ["bench", str(plan), "--sizes", "8"])
        assert r.exit_code == 3 and "error:" in r.output, r.output


# -- static types of the TensorRT-facing modules ----------------------------------------------------


def _sanitized_tensorrt_stubs(dest: Path) -> Path | None:
    """A copy of the installed tensorrt-stubs that mypy can parse, or None when they are not installed.

    tensorrt-stubs 10.13 (pybind11-stubgen output) has parameters named `in` and parameters without a
    default after ones with a default, both syntax errors, and ships as a `tensorrt/` folder without a
    py.typed marker, which mypy ignores in site-packages; the copy renames `in` to `in_`, gives such
    parameters `= ...`, and is put on mypy_path. Names and signatures are otherwise untouched."""
    site = Path(sysconfig.get_paths()["purelib"])
    files = ["tensorrt/__init__.pyi", "tensorrt_bindings/__init__.pyi", "tensorrt_bindings/tensorrt.pyi"]
    if not all((site / f).is_file() for f in files):
        return None
    for f in files:
        lines = []
        for line in (site / f).read_text().splitlines():
            m = re.match(r"(\s*def \w+\()(.*)(\) ->.*)$", line)
            if m:
                params, depth, cur = [], 0, ""
                for ch in m.group(2):
                    depth += ch in "([{"
                    depth -= ch in ")]}"
                    if ch == "," and depth == 0:
                        params.append(cur)
                        cur = ""
                    else:
                        cur += ch
                params.append(cur)
                seen_default = False
                for i, p in enumerate(params):
                    p = re.sub(r"^(\s*)in:", r"\1in_:", p)
                    if "=" in p:
                        seen_default = True
                    elif seen_default and p.strip() and not p.strip().startswith("*"):
                        p += " = ..."
                    params[i] = p
                line = m.group(1) + ",".join(params) + m.group(3)
            lines.append(line)
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        (dest / f).write_text("\n".join(lines) + "\n")
    return dest


def test_tensorrt_modules_type_check_against_tensorrt_stubs(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed")
    stubs = _sanitized_tensorrt_stubs(tmp_path / "stubs")
    if stubs is None:
        pytest.skip("tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs)")
    config = tmp_path / "mypy.ini"
    config.write_text(f"""[mypy]
python_version = 3.11
mypy_path = {stubs}
cache_dir = {tmp_path / 'cache'}
follow_imports = silent
check_untyped_defs = True
warn_unused_ignores = True
[mypy-torch.*]
follow_imports = skip
[mypy-cuda.*]
ignore_missing_imports = True
[mypy-tensorrt_libs]
ignore_missing_imports = True
[mypy-tensorrt]
ignore_errors = True
[mypy-tensorrt_bindings.*]
ignore_errors = True
""")
    files = ["agileir/runtime/tensorrt/builder.py", "agileir/runtime/tensorrt/runner.py", "agileir/runtime/tensorrt/env.py"]
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), *files], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- TensorRT (skipped without TensorRT and a GPU) --------------------------------------------------

BUILD = dict(profile=ShapeProfile((1, 3, 1, 1), (1, 3, 32, 32), (2, 3, 48, 48)), workspace_mib=1024,
             optimization_level=1)
# Engine vs ONNX Runtime CPU on the same graph, raw outputs (not measured yet: no TensorRT machine so far).
ENGINE_VS_ORT_DB = {"fp32": 60.0, "fp16": 50.0, "int8": 35.0}


def _library_or_skip():
    from agileir.plugins import LIBRARY_NAME, find_plugin_library

    lib = find_plugin_library()
    if lib is None:
        pytest.skip(f"{LIBRARY_NAME} is not built (docs/plugin.md)")
    return lib


@pytest.mark.trt
@needs_trt
@pytest.mark.parametrize("key", ["standard", "plugin", "standard-fp16", "plugin-fp16", "standard-int8", "plugin-int8"])
def test_engine_build_parity_and_validation(artifacts, dataset, tmp_path, key):
    """Every variant x form (C++ plugin library for the plugin form): strongly typed build, parity with ONNX
    Runtime through Polygraphy's Comparator (our runner and Polygraphy's TrtRunner on the same engine),
    tiling beyond the profile, then `agileir validate` with the precision's criterion."""
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from agileir.runtime.tensorrt.builder import build_engine
    from agileir.runtime.tensorrt.runner import TensorRTRunner

    form, precision = (key.split("-") + ["fp32"])[:2]
    library = _library_or_skip() if form == "plugin" else None
    options = BuildOptions(**BUILD, plugin="library", plugin_library=library, timing_cache=tmp_path / "timing.cache")
    engine = tmp_path / "engine.plan"
    sidecar = build_engine(artifacts[key], engine, options)
    assert engine.is_file() and (tmp_path / "engine.json").is_file() and (tmp_path / "timing.cache").is_file()
    assert sidecar["form"] == form and sidecar["precision"] == precision and sidecar["strongly_typed"]
    assert sidecar["source_onnx"]["sha256"] == file_sha256(artifacts[key]) and sidecar["scale"] == 2
    assert sidecar["plugin"]["impl"] == ("library" if form == "plugin" else None)

    rng = np.random.default_rng(0)
    feeds = [{"lr": rng.random((1, 3, 19, 26), dtype=np.float32)}, {"lr": rng.random((2, 3, 48, 40), dtype=np.float32)}]
    runners = [load_runner(artifacts[key], backend="onnxruntime-cpu", activate=False), TensorRTRunner(engine),
               TrtRunner(EngineFromBytes(BytesFromPath(str(engine))))]  # every variant keeps float32 I/O
    passed, record = compare_runners(runners, feeds, min_psnr_db=ENGINE_VS_ORT_DB[precision])
    assert passed, record

    # beyond the profile (max 48 x 48, batch 2): tiled and split by the runner, close to untiled ONNX Runtime
    x = np.ascontiguousarray(sample_image(96, 64).transpose(2, 0, 1)[None].repeat(3, 0))  # window multiples
    with load_runner(artifacts[key], backend="onnxruntime-cpu") as ort_runner:
        reference = ort_runner.upscale(x)
    with TensorRTRunner(engine) as runner:
        assert psnr(runner.upscale(x), reference) >= min(40.0, ENGINE_VS_ORT_DB[precision])

    r = CliRunner().invoke(main, ["validate", str(engine), "--dataset", str(dataset), "--scale", "2",
                                  "--reference", str(artifacts["checkpoint"])])
    assert r.exit_code == 0, r.output


@pytest.mark.trt
@needs_trt
def test_qdp_engine_builds_and_validates(artifacts, dataset, tmp_path):
    """The Python QDP form in its own process (one process registers either the QDP or the C++ library)."""
    version = require_tensorrt()
    if tuple(int(v) for v in version.split(".")[:2]) < (10, 9):
        pytest.skip(f"TensorRT {version} has no Python AOT plugins (needs 10.9)")
    engine = tmp_path / "qdp.plan"
    cli = [sys.executable, "-c", "from agileir.cli import main; main()"]
    build = subprocess.run(cli + ["build", str(artifacts["plugin"]), "-o", str(engine), "--plugin", "qdp",
                                  "--max-shape", "64x64", "--opt-shape", "32x32", "--opt-level", "1"],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    assert json.loads((tmp_path / "qdp.json").read_text())["plugin"]["impl"] == "qdp"
    check = subprocess.run(cli + ["validate", str(engine), "--dataset", str(dataset), "--scale", "2",
                                  "--reference", str(artifacts["checkpoint"])],
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


@pytest.mark.trt
@needs_trt
def test_fp32_graph_built_as_fp16(artifacts, dataset, tmp_path):
    """TensorRT 10: the one weakly typed build (BuilderFlag.FP16), judged by the fp16 criterion; TensorRT 11
    refuses it (FP16 comes from an FP16 graph)."""
    from agileir.runtime.tensorrt.builder import build_engine

    engine = tmp_path / "fp16.plan"
    if int(require_tensorrt().split(".")[0]) >= 11:
        with pytest.raises(ValueError, match="strongly typed"):
            build_engine(artifacts["standard"], engine, BuildOptions(**BUILD, precision="fp16"))
        return
    sidecar = build_engine(artifacts["standard"], engine, BuildOptions(**BUILD, precision="fp16"))
    assert sidecar["precision"] == "fp16" and not sidecar["strongly_typed"] and sidecar["builder_flags"] == ["FP16"]
    r = CliRunner().invoke(main, ["validate", str(engine), "--dataset", str(dataset), "--scale", "2",
                                  "--reference", str(artifacts["checkpoint"])])
    assert r.exit_code == 0 and "fp16 criterion" in r.output, r.output


def test_rtx_attention_engines_stop_at_the_side_tensorrt_rtx_builds():
    """TensorRT-RTX attention-form engines are capped (larger inputs are tiled); other forms and TensorRT keep
    the profile they were asked for."""
    from agileir.runtime.tensorrt.builder import RTX_ATTENTION_MAX_SIDE, ShapeProfile, fitted_profile

    asked = ShapeProfile((1, 3, 1, 1), (1, 3, 384, 200), (2, 3, 512, 512))
    capped = fitted_profile(asked, "attention", "rtx")
    side = RTX_ATTENTION_MAX_SIDE
    assert capped.max == (2, 3, side, side) and capped.opt == (1, 3, min(384, side), 200) and capped.min == asked.min
    assert fitted_profile(asked, "standard", "rtx") == asked == fitted_profile(asked, "attention", "tensorrt")


# -- --device, the same for every backend (agileir.runtime.devices) ----------------------------------


CUDA_IN_ORT = "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()


@pytest.mark.skipif(CUDA_IN_ORT, reason="onnxruntime here has the CUDA provider")
@pytest.mark.parametrize("key", ["standard", "plugin-fp16", "checkpoint"])
def test_device_cuda_without_cuda_exits_3_naming_cuda(artifacts, tmp_path, key):
    """`agileir-infer model.onnx DIR --device cuda` on a machine without CUDA: exit 3 in one line, nothing written
    (it used to run on the CPU and exit 0); a checkpoint the same."""
    (tmp_path / "in").mkdir()
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    r = CliRunner().invoke(main, ["infer", str(artifacts[key]), str(tmp_path / "in"), "--device", "cuda"])
    assert r.exit_code == 3, r.output
    errors = [line for line in r.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: --device cuda: CUDA is not available to "), r.output
    assert "Traceback" not in r.output and not (tmp_path / "in_x2").exists()


def test_device_auto_says_which_device_and_cpu_is_the_cpu(artifacts, tmp_path):
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["infer", str(artifacts["standard"]), str(tmp_path / "a.png"),
                                                  "--backend", "onnxruntime"])
    assert r.exit_code == 0, r.output + r.stderr
    device_lines = [line for line in r.stderr.splitlines() if line.startswith("device: ")]
    expected = "device: cuda:0 (auto)" if CUDA_IN_ORT else "device: cpu (auto: ONNX Runtime has no CUDA provider here)"
    assert device_lines == [expected], r.stderr
    r = CliRunner().invoke(main, ["infer", str(artifacts["standard"]), str(tmp_path / "a.png"),
                                                  "--backend", "onnxruntime", "--device", "cpu", "-o",
                                                  str(tmp_path / "b.png")])
    assert r.exit_code == 0 and "device: " not in r.stderr and "CPUExecutionProvider" in r.stderr, r.stderr
    with load_runner(artifacts["standard"], backend="onnxruntime", device="cpu", echo=lambda _: None) as runner:
        assert runner.session.get_providers() == ["CPUExecutionProvider"] and runner.device == "cpu"


def test_device_combinations_that_cannot_run_exit_2(artifacts, tmp_path):
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for args, message in [
        ([str(artifacts["standard"]), "--backend", "onnxruntime-cpu", "--device", "cuda"], "runs on the CPU"),
        ([str(artifacts["standard"]), "--backend", "onnxruntime", "--device", "gpu7"], "unknown device 'gpu7'"),
        ([str(artifacts["standard"]), "--backend", "tensorrt", "--device", "cpu"], "runs on a CUDA GPU"),
    ]:
        r = CliRunner().invoke(main, ["infer", *args[:1], str(tmp_path / "a.png"), *args[1:]])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    assert not (tmp_path / "a_x2.png").exists()


# -- one request object per command (agileir.cli.options groups) -------------------------------------------


@pytest.mark.parametrize("command, params", [("export", ["request", "overwrite"]),
                                             ("calibrate", ["request", "overwrite"]),
                                             ("build", ["request", "print_trtexec", "overwrite"])])
def test_each_deploy_command_takes_one_request_object(command, params):
    """export_cmd took 18 parameters, calibrate_cmd 16, build_cmd 16: now their option groups hand each one
    request object (and the cross-cutting --overwrite / --print-trtexec flags)."""
    import inspect

    callback = main.commands[command].callback
    inner = callback.__wrapped__  # below the option group: the command's own function
    assert list(inspect.signature(inner).parameters) == params


def test_build_request_is_what_the_command_builds(artifacts, tmp_path):
    """The trtexec line `agileir build --print-trtexec` prints is the BuildRequest's, built by hand."""
    from agileir.deploy.build import BuildRequest

    args = ["--opt-shape", "64x64", "--max-shape", "1x3x128x128", "--workspace", "1024", "--opt-level", "5"]
    r = CliRunner().invoke(main, ["build", str(artifacts["plugin"]), "-o", str(tmp_path / "e.plan"), *args,
                                  "--print-trtexec"])
    assert r.exit_code == 0, r.output
    options = BuildOptions(profile=ShapeProfile((1, 3, 1, 1), (1, 3, 64, 64), (1, 3, 128, 128)), workspace_mib=1024,
                           optimization_level=5)
    request = BuildRequest(artifacts["plugin"], tmp_path / "e.plan", options)
    assert r.output.strip() == request.trtexec_line() and "--maxShapes=lr:1x3x128x128" in r.output
    assert f"--timingCacheFile={tmp_path / 'timing.cache'}" in r.output
    with pytest.raises(ValueError, match="must end in .plan or .engine"):
        BuildRequest(artifacts["plugin"], tmp_path / "e.bin").engine_path()
