"""The C++ GSWA plugin with TensorRT-RTX: plugin-form ONNX parses and builds an engine on a CPU-only machine.

TensorRT-RTX builds engines ahead of time without a GPU, so this runs everywhere `tensorrt_rtx` (pip
tensorrt-rtx-cu13), cmake, a C++ compiler, nvcc and TensorRT(-RTX) headers are present:

* the on-demand path (agileir.plugins.ondemand.ensure_library, the project's CMake underneath) builds
  libagileir_trt_plugins_rtx.so once per session (PTX for compute_75 only, so it compiles in seconds);
  headers from AGILEIR_TRT_INCLUDE / TensorRT_RTX_ROOT (e.g. the TensorRT-RTX SDK) or the TensorRT 10.13.3
  fixture headers in ../shared/third_party/tensorrt-headers;
* the tiny AgileIR and SwinIR plugin-form graphs parse with exactly one IPluginV3 layer per GSWA node and
  build_serialized_network returns a non-empty engine; the standard form builds too, without plugin layers;
* without the libtensorrt_rtx.so link next to it, the library says how to fix the parser abort.

Parsing and building run in a subprocess: the failure this guards against (TensorRT-RTX 1.7's ONNX parser
dlopen-s "libtensorrt_rtx.so", absent from the pip wheel, and aborts the process) is a SIGABRT, not an exception.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agileir.plugins import RTX_LIBRARY_NAME, find_nvcc, rtx_parser_link_problem
from agileir.runtime.tensorrt.env import load_plugin_library
from test_plugin_build import _tensorrt_include_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = ((1, 3, 16, 16), (1, 3, 32, 32), (1, 3, 64, 64))
SESSION_PLUGIN_CACHE = "agileir-plugin-cache"  # one on-demand RTX library per test session (test_plugin_on_demand)


def _rtx_libs_dir() -> Path | None:
    """Folder of the tensorrt_rtx_libs wheel (libtensorrt_rtx.so.1), found without importing TensorRT-RTX."""
    try:
        spec = importlib.util.find_spec("tensorrt_rtx_libs")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _require_toolchain():
    try:
        has_rtx = importlib.util.find_spec("tensorrt_rtx") is not None
    except (ImportError, ValueError):
        has_rtx = False
    if not has_rtx:
        pytest.skip("tensorrt_rtx is not installed (pip install tensorrt-rtx-cu13): TensorRT-RTX build not checked")
    missing = [name for name, ok in (("cmake", shutil.which("cmake")), ("a C++ compiler", shutil.which("c++")),
                                     ("nvcc", find_nvcc())) if not ok]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: the TensorRT-RTX plugin library was not built")


@pytest.fixture(scope="session")
def rtx_library(tmp_path_factory) -> Path:
    """The library from the on-demand path (agileir.plugins.ondemand.ensure_library: PTX for compute_75, cached)."""
    from agileir.plugins.ondemand import PluginBuildSpec, ensure_library

    _require_toolchain()
    libs = _rtx_libs_dir()
    if libs is None:
        pytest.skip("tensorrt_rtx_libs (the wheel with libtensorrt_rtx.so.1) not found")
    include = None
    for var in ("AGILEIR_TRT_INCLUDE", "TensorRT_RTX_ROOT"):
        v = os.environ.get(var)
        for cand in ([Path(v), Path(v) / "include"] if v else []):
            if (cand / "NvInferRuntime.h").is_file():
                include = include or cand
    include = include or _tensorrt_include_dir("10.13.3") or _tensorrt_include_dir()
    if include is None:
        pytest.skip("no TensorRT(-RTX) headers (set AGILEIR_TRT_INCLUDE to the TensorRT-RTX SDK's include/)")
    from importlib.metadata import version

    spec = PluginBuildSpec("rtx", version("tensorrt_rtx_cu13"), library_dir=libs, include_dir=include)
    t0 = time.perf_counter()
    lib = ensure_library(spec, tmp_path_factory.getbasetemp() / SESSION_PLUGIN_CACHE, echo=print)
    print(f"built {lib.name} against {include} in {time.perf_counter() - t0:.1f}s")
    assert lib.name == RTX_LIBRARY_NAME
    assert (lib.parent / "libtensorrt_rtx.so").resolve() == (libs / "libtensorrt_rtx.so.1").resolve()
    return lib


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> dict[str, tuple[Path, int]]:
    """name -> (path, GSWA node count) for the plugin and standard forms of the tiny AgileIR and SwinIR."""
    _require_toolchain()
    import onnx

    from agileir.export.onnx_export import export_onnx, node_counts
    from agileir.models import build_model
    from test_models import TINY_AGILEIR, TINY_SWINIR

    out = tmp_path_factory.mktemp("rtx_onnx")
    files = {}
    for arch, config in (("agileir", TINY_AGILEIR), ("swinir", TINY_SWINIR)):
        model = build_model(config).fuse()
        for form in ("plugin", "standard"):
            proto = export_onnx(model, form)
            path = out / f"{arch}.{form}.onnx"
            onnx.save(proto, str(path))
            files[f"{arch}-{form}"] = (path, node_counts(proto)["gswa_nodes"])
    return files


BUILD_SCRIPT = r"""
import json, sys, time
from collections import Counter
import tensorrt_rtx as trt

lib, profile, paths = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
logger = trt.Logger(trt.Logger.WARNING)
if lib.startswith("raw:"):  # TensorRT-RTX's own load_library, bypassing agileir's checks
    assert trt.get_plugin_registry().load_library(lib[4:]) is not None, "load_library failed"
else:
    from agileir.runtime.tensorrt.env import load_plugin_library
    load_plugin_library(lib, flavour="rtx")
results = {}
for path in paths:
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    t0 = time.perf_counter()
    ok = parser.parse_from_file(path)
    parse_s = time.perf_counter() - t0
    r = {"parsed": bool(ok), "errors": [str(parser.get_error(i)) for i in range(parser.num_errors)]}
    if ok:
        types = Counter(network.get_layer(i).type.name for i in range(network.num_layers))
        config = builder.create_builder_config()
        prof = builder.create_optimization_profile()
        prof.set_shape(network.get_input(0).name, *profile)
        config.add_optimization_profile(prof)
        t0 = time.perf_counter()
        engine = builder.build_serialized_network(network, config)
        r.update(layers=network.num_layers, plugin_v3=types.get("PLUGIN_V3", 0), parse_s=parse_s,
                 build_s=time.perf_counter() - t0, engine_bytes=0 if engine is None else engine.nbytes)
    results[path] = r
print("RESULTS " + json.dumps(results))
"""


def _run_rtx(lib: Path | str, paths: list[Path], timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", BUILD_SCRIPT, str(lib), json.dumps(PROFILE), *map(str, paths)],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def rtx_builds(rtx_library, tiny_onnx) -> dict[str, dict]:
    """One subprocess parses and builds all four graphs; name -> measurements."""
    proc = _run_rtx(rtx_library, [p for p, _ in tiny_onnx.values()])
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")), None)
    assert proc.returncode == 0 and line, (
        f"TensorRT-RTX parse/build process failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    by_path = json.loads(line[len("RESULTS "):])
    results = {name: by_path[str(path)] for name, (path, _) in tiny_onnx.items()}
    for name, r in results.items():
        print(f"{name}: {json.dumps(r)}")
    return results


@pytest.mark.parametrize("arch", ["agileir", "swinir"])
def test_rtx_plugin_form_builds_engine(rtx_builds, tiny_onnx, arch):
    r = rtx_builds[f"{arch}-plugin"]
    assert r["parsed"], r["errors"]
    gswa_nodes = tiny_onnx[f"{arch}-plugin"][1]
    assert gswa_nodes > 0
    assert r["plugin_v3"] == gswa_nodes  # exactly one IPluginV3 layer per GSWA node
    assert r["engine_bytes"] > 0


@pytest.mark.parametrize("arch", ["agileir", "swinir"])
def test_rtx_standard_form_has_no_plugin_layers(rtx_builds, arch):
    std, plug = rtx_builds[f"{arch}-standard"], rtx_builds[f"{arch}-plugin"]
    assert std["parsed"], std["errors"]
    assert std["plugin_v3"] == 0 and std["engine_bytes"] > 0
    # one plugin node replaces each head group's window bookkeeping (SwinIR: each head's)
    assert plug["layers"] < std["layers"]


def test_rtx_library_without_link_says_how_to_fix(rtx_library, tmp_path):
    """Copied away from its libtensorrt_rtx.so link, the library names the exact ln -s that fixes the parser."""
    lone = tmp_path / RTX_LIBRARY_NAME
    shutil.copy2(rtx_library, lone)
    proc = _run_rtx(f"raw:{lone}", [], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "libtensorrt_rtx.so cannot be opened" in proc.stderr and "ln -s " in proc.stderr, proc.stderr[-3000:]
    assert str(tmp_path / "libtensorrt_rtx.so") in proc.stderr
    # the Python loader refuses it up front, before TensorRT-RTX is imported, with the same fix
    env_before = os.environ.pop("LD_LIBRARY_PATH", None)
    try:
        problem = rtx_parser_link_problem(lone)
        assert problem and "ln -s " in problem and "\n" not in problem
        with pytest.raises(RuntimeError, match="libtensorrt_rtx.so is missing"):
            load_plugin_library(lone, flavour="rtx")
    finally:
        if env_before is not None:
            os.environ["LD_LIBRARY_PATH"] = env_before
    assert rtx_parser_link_problem(rtx_library) is None
