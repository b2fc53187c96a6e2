"""The GSWA plugin library built on first use (agileir.plugins.ondemand), on a CPU-only machine.

* The pinned header sha256s are those of NVIDIA's open-source headers (the fixture copies in
  ../shared/third_party/tensorrt-headers are those tags' include/, unchanged); a fetch whose file differs by one
  byte is refused and leaves nothing behind (a local file:// URL stands in for the network).
* What the machine lacks (cmake / compiler, headers) ends `agileir plugin build` with one `error:` line, exit 3.
* Two `agileir plugin build --target rtx` started at once on an empty cache build the library once, both print
  the same path, and the cache entry has the libtensorrt_rtx.so link; `-o DIR` copies both.
* `agileir build` of a tiny plugin-form graph with TensorRT-RTX, without --plugin-lib, loads the cached library:
  one IPluginV3 layer per GSWA node, and the engine cache (engine_runner) builds its engine with it too.

Everything that loads TensorRT-RTX runs in a subprocess (its ONNX parser aborts the process when the link is
missing; docs/plugin.md). Headers come from AGILEIR_TRT_INCLUDE = the 10.13.3 fixture.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agileir.plugins import RTX_LIBRARY_NAME
from agileir.plugins.headers import PINNED_HEADERS, HeaderFetchError, fetch_headers
from agileir.plugins.ondemand import missing_tools
from test_rtx_plugin import SESSION_PLUGIN_CACHE

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADERS = REPO_ROOT.parent / "shared" / "third_party" / "tensorrt-headers"
PROFILE_ARGS = ["--min-shape", "1x3x16x16", "--opt-shape", "1x3x32x32", "--max-shape", "1x3x64x64"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fixture_include(tag: str) -> Path:
    include = HEADERS / tag / "include"
    if not (include / "NvInferRuntime.h").is_file():
        pytest.skip(f"TensorRT {tag} fixture headers not found in {HEADERS}")
    return include


@pytest.mark.parametrize("tag", sorted(PINNED_HEADERS))
def test_pinned_headers_are_the_open_source_ones(tag):
    include = _fixture_include(tag)
    assert len(PINNED_HEADERS[tag]) == 8
    for name, sha256 in PINNED_HEADERS[tag].items():
        assert _sha256(include / name) == sha256, name


def test_fetch_refuses_a_wrong_sha256_and_keeps_nothing(tmp_path):
    include = _fixture_include("10.13.3")
    mirror = tmp_path / "mirror"
    shutil.copytree(include, mirror)
    mirror.chmod(0o755)
    tampered = mirror / "NvInferRuntime.h"
    tampered.chmod(0o644)
    tampered.write_bytes(tampered.read_bytes().replace(b"namespace nvinfer1", b"namespace nvinfer2", 1))
    dest = tmp_path / "cache" / "headers" / "10.13.3"
    with pytest.raises(HeaderFetchError, match="NvInferRuntime.h has sha256 .* refused"):
        fetch_headers("10.13.3", dest, base_url=mirror.as_uri() + "/")
    assert not dest.exists() and list(dest.parent.iterdir()) == []

    shutil.copy2(include / "NvInferRuntime.h", tampered)  # the untouched file: accepted
    assert fetch_headers("10.13.3", dest, base_url=mirror.as_uri() + "/") == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted(PINNED_HEADERS["10.13.3"])
    assert all(_sha256(dest / n) == s for n, s in PINNED_HEADERS["10.13.3"].items())


def _has_rtx() -> bool:
    try:
        return importlib.util.find_spec("tensorrt_rtx") is not None
    except (ImportError, ValueError):
        return False


def _env(tmp: Path, cache: Path | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AGILEIR_TRT_PLUGIN_LIB", "AGILEIR_TRT_INCLUDE", "TensorRT_ROOT", "AGILEIR_TRT_HEADERS_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env["AGILEIR_PLUGIN_CACHE"] = str(cache or tmp / "plugin-cache")
    return env | extra


def _agileir(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agileir", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_missing_tools_named_in_one_line_exit_3(tmp_path):
    if not _has_rtx():
        pytest.skip("tensorrt_rtx is not installed")
    bin_dir = tmp_path / "bin"  # PATH with python only: no cmake, no c++
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = _env(tmp_path, PATH=str(bin_dir))
    proc = _agileir(["plugin", "build", "--target", "rtx"], env, tmp_path)
    assert proc.returncode == 3, proc.stderr
    line = _one_error_line(proc)
    assert "cmake" in line and "C++ compiler" in line, line
    assert not (tmp_path / "plugin-cache").exists() or not any((tmp_path / "plugin-cache").glob("rtx-*"))


def test_unavailable_headers_named_in_one_line_exit_3(tmp_path):
    if not _has_rtx():
        pytest.skip("tensorrt_rtx is not installed")
    if missing_tools():
        pytest.skip(f"{', '.join(missing_tools())} missing: the header step is not reached")
    env = _env(tmp_path, AGILEIR_TRT_HEADERS_URL=(tmp_path / "no-mirror" / "{tag}").as_uri())
    proc = _agileir(["plugin", "build", "--target", "rtx"], env, tmp_path)
    assert proc.returncode == 3, proc.stderr
    line = _one_error_line(proc)
    assert "TensorRT headers not found" in line and "AGILEIR_TRT_INCLUDE" in line, line


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """Two concurrent on-demand builds on an empty cache, then a third call that must hit the cache."""
    if not _has_rtx():
        pytest.skip("tensorrt_rtx is not installed (pip install tensorrt-rtx-cu13)")
    if missing_tools():
        pytest.skip(f"{', '.join(missing_tools())} not found: the plugin library cannot be built here")
    tmp = tmp_path_factory.mktemp("on_demand")
    cache = tmp_path_factory.getbasetemp() / SESSION_PLUGIN_CACHE  # shared with test_rtx_plugin's library
    empty = not cache.is_dir() or not any(cache.glob("rtx-*"))
    env = _env(tmp, cache, AGILEIR_TRT_INCLUDE=str(_fixture_include("10.13.3")))
    cmd = [sys.executable, "-m", "agileir", "plugin", "build", "--target", "rtx"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) + (p.returncode,) for p in procs]
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = _agileir(["plugin", "build", "--target", "rtx", "-o", str(tmp / "out")], env, tmp)
    return {"tmp": tmp, "cache": cache, "empty": empty, "env": env, "outs": outs, "build_s": build_s,
            "again": again, "again_s": time.perf_counter() - t0}


def test_concurrent_builders_build_once(built):
    paths = []
    for stdout, stderr, rc in built["outs"]:
        assert rc == 0, stderr[-3000:]
        paths.append(stdout.strip().splitlines()[-1])
    assert paths[0] == paths[1]
    lib = Path(paths[0])
    print(f"on-demand RTX plugin build: {built['build_s']:.1f} s, cache hit: {built['again_s']:.1f} s")
    # once on an empty cache (one caller waits on the other's lock), not at all when test_rtx_plugin built it first
    assert sum("plugin: building" in stderr for _, stderr, _ in built["outs"]) == (1 if built["empty"] else 0)
    assert lib.name == RTX_LIBRARY_NAME and lib.parent.parent == built["cache"]
    assert (lib.parent / "build.json").is_file()
    wheel = Path(list(importlib.util.find_spec("tensorrt_rtx_libs").submodule_search_locations)[0])
    assert (lib.parent / "libtensorrt_rtx.so").resolve() == (wheel / "libtensorrt_rtx.so.1").resolve()
    assert [p.name for p in lib.parent.parent.iterdir() if p.name.endswith(".building")] == []


def test_cached_library_is_reused_and_copied(built):
    again = built["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert "plugin: building" not in again.stderr
    out = built["tmp"] / "out"
    assert again.stdout.strip().splitlines()[-1] == str(out / RTX_LIBRARY_NAME)
    cached = Path(built["outs"][0][0].strip().splitlines()[-1])
    assert (out / RTX_LIBRARY_NAME).read_bytes() == cached.read_bytes()
    assert (out / "libtensorrt_rtx.so").resolve() == (cached.parent / "libtensorrt_rtx.so").resolve()


@pytest.fixture(scope="module")
def tiny_plugin_onnx(built) -> tuple[Path, int]:
    import onnx

    from agileir.export.onnx_export import annotate, export_onnx, node_counts
    from agileir.models import build_model
    from test_models import TINY_AGILEIR

    model = build_model(TINY_AGILEIR).fuse()
    proto = export_onnx(model, "plugin")
    annotate(proto, {"scale": model.scale, "window": TINY_AGILEIR.window_size, "form": "plugin",
                     "config": TINY_AGILEIR.to_dict()})
    path = built["tmp"] / "tiny.plugin.onnx"
    onnx.save(proto, str(path))
    return path, node_counts(proto)["gswa_nodes"]


def test_agileir_build_rtx_uses_the_on_demand_library(built, tiny_plugin_onnx):
    onnx_path, gswa_nodes = tiny_plugin_onnx
    engine = built["tmp"] / "tiny.plan"
    proc = _agileir(["build", str(onnx_path), "--target", "rtx", "-o", str(engine), *PROFILE_ARGS], built["env"],
                    built["tmp"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "plugin: building" not in proc.stderr  # the cached library
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    assert sidecar["plugin"] == {"impl": "library", "library": RTX_LIBRARY_NAME}
    assert gswa_nodes > 0 and sidecar["network"]["plugin_layers"] == gswa_nodes
    assert sidecar["engine_bytes"] == engine.stat().st_size > 0


ENGINE_CACHE_SCRIPT = r"""
import sys
from agileir.runtime import engine_profile, engine_runner
from agileir.runtime.tensorrt.env import TensorRTUnavailable
try:
    engine_runner(sys.argv[1], "rtx", sys.argv[2], engine_profile(64), activate=False)
    print("RUNNER")
except TensorRTUnavailable as e:  # no GPU to run it on: the engine is built and cached all the same
    print("NO-GPU", e)
"""


def test_engine_cache_builds_the_plugin_form_with_the_on_demand_library(built, tiny_plugin_onnx):
    onnx_path, gswa_nodes = tiny_plugin_onnx
    cache = built["tmp"] / "engines"
    proc = subprocess.run([sys.executable, "-c", ENGINE_CACHE_SCRIPT, str(onnx_path), str(cache)], env=built["env"],
                          cwd=built["tmp"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(("RUNNER", "NO-GPU")), proc.stdout
    assert "plugin: building" not in proc.stderr  # the cached library
    sidecars = list(cache.glob("*/engine.json"))
    assert len(sidecars) == 1
    sidecar = json.loads(sidecars[0].read_text())
    assert sidecar["plugin"]["impl"] == "library" and sidecar["network"]["plugin_layers"] == gswa_nodes
    # stored zlib-compressed: the file is what engine.json describes, and inflates to a TensorRT-RTX plan
    import zlib

    from agileir.models.load import file_sha256

    stored = sidecars[0].with_suffix(".plan")
    assert sidecar["compression"] == "zlib" and sidecar["engine_sha256"] == file_sha256(stored)
    plan = zlib.decompress(stored.read_bytes())
    assert len(plan) == sidecar["plan_bytes"] > 2 * sidecar["engine_bytes"] == 2 * stored.stat().st_size
    built_plan = (built["tmp"] / "tiny.plan").read_bytes()  # agileir build's (uncompressed) plan of the same graph
    assert plan[:4] == built_plan[:4] == b"vtrt"
