"""Build-level checks of the GSWA CUDA kernel and TensorRT plugin that need no GPU and no TensorRT.

* gswa_kernel.cu compiles with nvcc for sm_87 (shared library with the C launchers), sm_89 and sm_90 (cubin),
  and to PTX for compute_87; all four compiles run once per session, two at a time (skipped, with the reason,
  only when nvcc is absent).
* launch.py agrees with gswa_kernel.h and with the C gswa_launch_config (the sm_87 library, through ctypes).
* The kernels run unchanged under a CPU emulation of the CUDA execution model (csrc/emu, g++) and match the
  PyTorch reference: real numerics of the real source, without a GPU.
* NVRTC (cuda-python) compiles the same source to PTX when cuda-python is installed.
* gswa_plugin.cpp (all three builds: loadLibrary, static registration, TensorRT-RTX) compiles with -Wall -Wextra
  -Werror against the TensorRT 10.13.3 and 11.1 headers in ../shared/third_party/tensorrt-headers (test fixtures)
  and against TensorRT_ROOT / AGILEIR_TRT_INCLUDE when set; each is skipped with the reason when its headers are
  missing.
* The Python modules import without TensorRT, and the QDP registration fails with one clear line.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agileir.plugins import find_nvcc, kernel_source_dir, nvcc_command
from agileir.plugins import launch

CSRC = kernel_source_dir()
NVCC = find_nvcc()
BUILD_JOBS = max(1, min(2, int(os.environ.get("AGILEIR_BUILD_JOBS", os.cpu_count() or 1))))

# name -> (arch, mode, output file name)
NVCC_BUILDS = {
    "sm_87-shared": (87, "shared", "libgswa_sm87.so"),
    "sm_89-cubin": (89, "cubin", "gswa_sm89.cubin"),
    "sm_90-cubin": (90, "cubin", "gswa_sm90.cubin"),
    "compute_87-ptx": (87, "ptx", "gswa_87.ptx"),
}


@pytest.fixture(scope="module")
def nvcc_builds(tmp_path_factory):
    """Run every nvcc compile once (BUILD_JOBS at a time); name -> (returncode, output, seconds, path)."""
    if NVCC is None:
        pytest.skip("nvcc not found (no CUDA toolkit): the kernel compile for sm_87/89/90 was not checked")
    out_dir = tmp_path_factory.mktemp("gswa_nvcc")

    def build(item):
        name, (arch, mode, fname) = item
        path = out_dir / fname
        t0 = time.perf_counter()
        proc = subprocess.run(nvcc_command(arch, path, mode), capture_output=True, text=True)
        return name, (proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0, path)

    # the slow ptxas builds first, the quick PTX one last
    with ThreadPoolExecutor(max_workers=BUILD_JOBS) as pool:
        results = dict(pool.map(build, NVCC_BUILDS.items()))
    for name, (rc, _, secs, _) in results.items():
        print(f"nvcc {name}: rc={rc} {secs:.1f}s")
    return results


@pytest.mark.parametrize("name", list(NVCC_BUILDS))
def test_nvcc_compiles_kernel(nvcc_builds, name):
    rc, output, secs, path = nvcc_builds[name]
    assert rc == 0, f"nvcc {name} failed after {secs:.1f}s:\n{output[-6000:]}"
    assert path.is_file() and path.stat().st_size > 0
    if path.suffix in (".cubin", ".so"):
        assert path.read_bytes()[:4] == b"\x7fELF"


def test_ptx_exports_every_kernel(nvcc_builds):
    rc, output, _, path = nvcc_builds["compute_87-ptx"]
    assert rc == 0, output[-3000:]
    entries = set(re.findall(r"\.entry\s+([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    expected = set(launch.all_kernel_names("f32")) | set(launch.all_kernel_names("f16"))
    assert entries == expected


def _header_defines() -> dict[str, str]:
    text = (CSRC / "gswa_kernel.h").read_text()
    return dict(re.findall(r"^#define\s+(GSWA_\w+)\s+(\S+)", text, flags=re.M))


def test_launch_py_constants_match_header():
    d = _header_defines()
    assert int(d["GSWA_MAX_KEY_DIM"]) == launch.MAX_KEY_DIM
    assert int(d["GSWA_MAX_V_DIM"]) == launch.MAX_V_DIM
    assert int(d["GSWA_TILE_KEYS"]) == launch.TILE_KEYS
    assert int(d["GSWA_Q_CHUNK"]) == launch.Q_CHUNK
    assert int(d["GSWA_KEY_GROUP"]) == launch.KEY_GROUP
    assert int(d["GSWA_DW_TAPS"]) == launch.DW_TAPS
    assert int(d["GSWA_SMEM_LIMIT"]) == launch.SMEM_LIMIT
    src = (CSRC / "gswa_kernel.cu").read_text()
    c_buckets = [(int(k), int(v)) for k, v in re.findall(r"^\s*\{(\d+), (\d+), \"gswa_fwd_f32", src, flags=re.M)]
    assert tuple(c_buckets) == launch.BUCKETS
    assert all(launch.shared_bytes(w, k, v) <= launch.SMEM_LIMIT for w in launch.WINDOWS for k, v in launch.BUCKETS)


class _CfgStruct(ctypes.Structure):
    _fields_ = [
        ("grid_x", ctypes.c_uint), ("block_x", ctypes.c_uint), ("shared_bytes", ctypes.c_uint),
        ("kmax", ctypes.c_int), ("vmax", ctypes.c_int), ("kernel_name", ctypes.c_char_p),
    ]


def _config_cases():
    for dtype in ("f32", "f16"):
        for window in (4, 8, 16):
            for shift in (-1, 0, 3, window // 2, window):
                for kd, vd in ((1, 1), (8, 8), (16, 8), (10, 10), (16, 30), (32, 8), (32, 33), (40, 8), (64, 64), (65, 8), (8, 65), (0, 4)):
                    for B, H, W in ((1, 16, 32), (2, 48, 32), (0, 16, 16), (1, 20, 16), (3, 8, 24)):
                        yield dtype, B, 2 * kd + vd, H, W, kd, vd, window, shift
    yield "f32", 1, 99, 16, 16, 32, 8, 16, 0  # C_total != 2*key_dim + v_dim


def test_c_launch_config_matches_python(nvcc_builds):
    rc, output, _, path = nvcc_builds["sm_87-shared"]
    assert rc == 0, output[-3000:]
    lib = ctypes.CDLL(str(path))
    fn = lib.gswa_launch_config
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int] * 9 + [ctypes.POINTER(_CfgStruct)]
    lib.gswa_status_string.restype = ctypes.c_char_p
    checked = 0
    for dtype, B, C, H, W, kd, vd, w, s in _config_cases():
        cfg = _CfgStruct()
        status = fn(int(dtype == "f16"), B, C, H, W, kd, vd, w, s, ctypes.byref(cfg))
        try:
            py = launch.launch_config(dtype, B, C, H, W, launch.NodeSettings(kd, vd, w, s))
        except ValueError as e:
            assert status != 0, f"C accepted {dtype, B, C, H, W, kd, vd, w, s} that Python rejects: {e}"
            assert lib.gswa_status_string(status)
            continue
        assert status == 0, f"C rejects {dtype, B, C, H, W, kd, vd, w, s}: {lib.gswa_status_string(status)}"
        assert (cfg.grid_x, cfg.block_x, cfg.shared_bytes) == (py.grid[0], py.block[0], py.shared_bytes)
        assert (cfg.kmax, cfg.vmax) == (py.kmax, py.vmax)
        assert cfg.kernel_name.decode() == py.kernel_name
        checked += 1
    assert checked > 50


# ---------------------------------------------------------------------------------------------- CPU emulation

EMU_CASES = [
    # dtype, B, H, W, key_dim, v_dim, window, shift, with_dw
    ("f32", 2, 48, 32, 32, 8, 16, 8, True),  # AgileIR-light group, shifted block
    ("f16", 1, 16, 32, 16, 30, 16, 0, True),
    ("f32", 1, 40, 16, 16, 30, 8, 4, True),
    ("f16", 2, 8, 24, 32, 8, 8, 0, True),
    ("f32", 1, 16, 16, 10, 10, 8, 4, False),  # SwinIR-light head, no depthwise conv
    ("f32", 1, 16, 16, 64, 64, 16, 8, True),  # generic kernel
    ("f16", 1, 32, 16, 40, 8, 16, 3, True),  # (64, 32) bucket, odd shift
]


@pytest.fixture(scope="module")
def emu_library(tmp_path_factory):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: the CPU emulation of the kernel was not run")
    out = tmp_path_factory.mktemp("gswa_emu") / "libgswa_emu.so"
    cmd = [gxx, "-std=c++20", "-O1", "-pthread", "-fno-strict-aliasing", "-shared", "-fPIC", "-DGSWA_HOST_EMULATION",
           "-Wall", "-Wno-unknown-pragmas", "-o", str(out), str(CSRC / "emu" / "gswa_emu.cpp")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and ("_Float16" in proc.stderr or "<barrier>" in proc.stderr):
        pytest.skip(f"this g++ lacks C++20 <barrier> or _Float16: {proc.stderr.splitlines()[0]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = ctypes.CDLL(str(out))
    lib.gswa_emu_launch.restype = ctypes.c_int
    p = ctypes.c_void_p
    lib.gswa_emu_launch.argtypes = [p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, p, p, p, p] + [ctypes.c_int] * 9 + [p]
    return lib


@pytest.mark.parametrize("case_args", EMU_CASES, ids=lambda a: "-".join(map(str, a)))
def test_kernel_cpu_emulation_matches_reference(emu_library, case_args):
    import numpy as np

    from gswa_cases import make_case

    dtype, B, H, W, kd, vd, w, s, with_dw = case_args
    case = make_case(dtype, B, H, W, kd, vd, w, s, with_dw=with_dw, seed=EMU_CASES.index(case_args))
    node = launch.NodeSettings(kd, vd, w, s, case.scale)
    cfg = launch.launch_config(dtype, B, case.C_total, H, W, node)
    scalars = launch.kernel_scalar_args(B, case.C_total, H, W, node)
    qkv = case.qkv_numpy()
    dw_w = case.dw_weight.contiguous().numpy()
    dw_b = case.dw_bias.contiguous().numpy()
    table = case.bias_table.contiguous().numpy()
    out = np.full((B, vd, H, W), np.nan, dtype=case.out_dtype())
    kernel = ctypes.cast(getattr(emu_library, cfg.kernel_name), ctypes.c_void_p)
    rc = emu_library.gswa_emu_launch(
        kernel, int(dtype == "f16"), cfg.grid[0], cfg.block[0], cfg.shared_bytes, qkv.ctypes.data,
        dw_w.ctypes.data if with_dw else None, dw_b.ctypes.data if with_dw else None, table.ctypes.data,
        *scalars, out.ctypes.data)
    assert rc == 0
    err = float(np.abs(out.astype(np.float32) - case.reference.numpy()).max())
    assert err <= case.tolerance, f"{cfg.kernel_name}: max abs error {err:.3g} > {case.tolerance}"


# ---------------------------------------------------------------------------------------------- NVRTC

def test_nvrtc_compiles_same_source():
    from agileir.plugins import ptx

    try:
        ptx.nvrtc_version()
    except ptx.CudaPythonMissing as e:
        pytest.skip(f"{e}: NVRTC compile not checked")
    except Exception as e:  # cuda-python present but libnvrtc not loadable
        pytest.skip(f"NVRTC unavailable ({type(e).__name__}: {str(e).splitlines()[0]}): NVRTC compile not checked")
    for dtype in ("f32", "f16"):
        one = ptx.compile_ptx(87, dtype, bucket=(32, 8))
        assert ptx.ptx_kernel_names(one) == [launch.kernel_name(dtype, 32, 8)]
        assert b".target sm_87" in one
    every = ptx.compile_ptx("sm_90", "float16")
    assert sorted(ptx.ptx_kernel_names(every)) == sorted(launch.all_kernel_names("f16"))


# ---------------------------------------------------------------------------------------------- C++ plugin

REPO_ROOT = Path(__file__).resolve().parents[1]
# NVIDIA's TensorRT headers as test fixtures (never copied into the project): <repo>/../shared/third_party/...
SHARED_TRT_HEADERS = REPO_ROOT.parent / "shared" / "third_party" / "tensorrt-headers"
HEADER_VERSIONS = ("8.5.3", "8.6.1", "10.3.0", "10.13.3", "11.1")  # JetPack 5.1, 6.0, 6.1/6.2; desktop 10 and 11
PLUGIN_SOURCES = ("gswa_plugin.cpp", "gswa_plugin_v2.cpp")  # IPluginV3 (TensorRT >= 10), IPluginV2DynamicExt (8.x)


def _tensorrt_include_dir(version: str | None = None) -> Path | None:
    """The include folder of TensorRT ``version`` from the shared fixtures, or (version None) the first of
    AGILEIR_TRT_INCLUDE / TensorRT_ROOT / system paths / the newest shared fixture that holds NvInferRuntime.h."""
    if version is not None:
        inc = SHARED_TRT_HEADERS / version / "include"
        return inc if (inc / "NvInferRuntime.h").is_file() else None
    cands = []
    for var in ("AGILEIR_TRT_INCLUDE", "TensorRT_ROOT", "TENSORRT_ROOT", "TRT_ROOT"):
        v = os.environ.get(var)
        if v:
            cands += [Path(v), Path(v) / "include"]
    cands += [Path("/usr/include/x86_64-linux-gnu"), Path("/usr/include/aarch64-linux-gnu"), Path("/usr/include"),
              Path("/usr/local/tensorrt/include"), Path("/opt/tensorrt/include")]
    cands += [SHARED_TRT_HEADERS / v / "include" for v in HEADER_VERSIONS[::-1]]
    for c in cands:
        if (c / "NvInferRuntime.h").is_file():
            return c
    return None


def _cuda_include_dir() -> Path | None:
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    if NVCC is not None:
        roots.append(str(Path(NVCC).resolve().parent.parent))
    for root in filter(None, roots):
        inc = Path(root) / "include"
        if (inc / "cuda_runtime_api.h").is_file():
            return inc
    return None


def _compile_plugin_cpp(trt_inc: Path, defs: list[str], source: str = "gswa_plugin.cpp",
                        obj: Path | None = None) -> subprocess.CompletedProcess:
    """g++ on one plugin source: syntax only, or (obj) an object file."""
    cuda_inc = _cuda_include_dir()
    gxx = shutil.which("g++") or shutil.which("c++")
    if cuda_inc is None or gxx is None:
        pytest.skip(f"CUDA headers or a C++ compiler missing: {source} was not compiled here")
    # project files with -Werror; TensorRT and CUDA headers as system headers (their warnings are not ours)
    mode = ["-fsyntax-only"] if obj is None else ["-c", "-fPIC", "-fvisibility=hidden", "-o", str(obj)]
    cmd = [gxx, "-std=c++17", *mode, "-Wall", "-Wextra", "-Werror", *defs, "-isystem", str(trt_inc),
           "-isystem", str(cuda_inc), "-I", str(CSRC), str(CSRC / source)]
    return subprocess.run(cmd, capture_output=True, text=True)


PLUGIN_DEFINES = {"loadLibrary": [], "static-registration": ["-DAGILEIR_GSWA_STATIC_REGISTRATION"],
                  "rtx": ["-DAGILEIR_TRT_RTX"]}


@pytest.mark.parametrize("flavour", list(PLUGIN_DEFINES))
def test_plugin_cpp_compiles_against_tensorrt_headers(flavour):
    trt_inc = _tensorrt_include_dir()
    if trt_inc is None:
        pytest.skip("TensorRT headers (NvInferRuntime.h) not found: gswa_plugin.cpp was not compiled here "
                    f"(set TensorRT_ROOT or AGILEIR_TRT_INCLUDE, or provide {SHARED_TRT_HEADERS}/<ver>/include)")
    proc = _compile_plugin_cpp(trt_inc, PLUGIN_DEFINES[flavour])
    assert proc.returncode == 0, f"against {trt_inc}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("source", PLUGIN_SOURCES)
@pytest.mark.parametrize("flavour", list(PLUGIN_DEFINES))
@pytest.mark.parametrize("version", HEADER_VERSIONS)
def test_plugin_cpp_compiles_against_shared_tensorrt_headers(version, flavour, source):
    """Every header set in ../shared/third_party/tensorrt-headers (TensorRT 8.5.3 to 11.1), both plugin sources."""
    trt_inc = _tensorrt_include_dir(version)
    if trt_inc is None:
        pytest.skip(f"{SHARED_TRT_HEADERS / version / 'include'} not found: TensorRT {version} compile not checked")
    proc = _compile_plugin_cpp(trt_inc, PLUGIN_DEFINES[flavour], source)
    assert proc.returncode == 0, f"TensorRT {version} headers ({trt_inc}), {source}:\n{proc.stdout}{proc.stderr}"


# entry points each build exports (C linkage), by TensorRT release: loadLibrary wants getCreators (10+) or
# getPluginCreators (8.6; 8.5 has no loadLibrary, its loader is the static registration)
ENTRY_POINTS = {"8.5.3": {"getPluginCreators"}, "8.6.1": {"getPluginCreators", "setLoggerFinder"},
                "10.3.0": {"getCreators", "setLoggerFinder"}, "10.13.3": {"getCreators", "setLoggerFinder"},
                "11.1": {"getCreators", "setLoggerFinder"}}


@pytest.mark.parametrize("version", HEADER_VERSIONS)
def test_each_release_gets_the_plugin_interface_it_has(version, tmp_path):
    """Compiled against a release's headers, the library holds the IPluginV2DynamicExt plugin for TensorRT 8.x and
    the IPluginV3 one from 10 (NV_TENSORRT_MAJOR), with that release's loader entry points."""
    nm = shutil.which("nm")
    trt_inc = _tensorrt_include_dir(version)
    if trt_inc is None or nm is None:
        pytest.skip(f"TensorRT {version} headers or nm missing: interface selection not checked")
    symbols = {}
    for flavour, defs in (("loadLibrary", []), ("static-registration", ["-DAGILEIR_GSWA_STATIC_REGISTRATION"])):
        text = ""
        for source in PLUGIN_SOURCES:
            obj = tmp_path / f"{flavour}-{source}.o"
            proc = _compile_plugin_cpp(trt_inc, defs, source, obj)
            assert proc.returncode == 0, proc.stderr
            text += subprocess.run([nm, "-C", "--defined-only", str(obj)], capture_output=True, text=True).stdout
        symbols[flavour] = text
    v2 = version.startswith("8.")
    for text in symbols.values():
        assert ("agileir::GswaPluginV2Creator::createPlugin" in text) == v2
        assert ("agileir::GswaPluginCreator::createPlugin" in text) == (not v2)
    exported = {name for name in ("getCreators", "getPluginCreators", "setLoggerFinder")
                if f" T {name}" in symbols["loadLibrary"]}
    assert exported == ENTRY_POINTS[version]
    assert not {"getCreators", "getPluginCreators"} & {n for n in ("getCreators", "getPluginCreators")
                                                       if f" T {n}" in symbols["static-registration"]}


# ---------------------------------------------------------------------------------------------- Python side

def test_modules_import_without_tensorrt():
    code = (
        "import sys\n"
        "import agileir.plugins, agileir.plugins.launch, agileir.plugins.ptx, agileir.runtime.tensorrt.qdp\n"
        "bad = [m for m in ('tensorrt', 'cuda', 'cuda.bindings') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr


def test_qdp_registration_without_tensorrt_is_one_clear_line():
    try:
        import tensorrt
    except Exception:
        pass
    else:
        if hasattr(tensorrt, "Builder"):  # a namespace from tensorrt-stubs alone is not TensorRT
            pytest.skip("TensorRT is installed here")
    from agileir.runtime.tensorrt import qdp

    with pytest.raises(RuntimeError) as info:
        qdp.register()
    msg = str(info.value)
    assert "\n" not in msg and "TensorRT" in msg and "10.9" in msg
    assert not qdp.is_registered()


def test_availability_reports_one_line_per_item():
    from agileir.runtime.tensorrt import availability, availability_report

    status = availability()
    assert set(status) == {"tensorrt", "qdp", "cuda_python", "gpu", "nvcc", "library"}
    for key, msg in status.items():
        assert msg is None or (isinstance(msg, str) and msg and "\n" not in msg), (key, msg)
    assert len(availability_report().splitlines()) == len(status)


def test_qdp_plan_matches_launch_config():
    from agileir.runtime.tensorrt.qdp import plan

    for dtype in ("f32", "f16"):
        for kd, vd in ((32, 8), (10, 10), (16, 30), (64, 64)):
            for w in (8, 16):
                node = launch.NodeSettings(kd, vd, w, w // 2)
                name, bucket, threads, smem = plan(dtype, node)
                cfg = launch.launch_config(dtype, 2, 2 * kd + vd, 2 * w, 3 * w, node)
                assert (name, bucket, threads, smem) == (cfg.kernel_name, (cfg.kmax, cfg.vmax), cfg.block[0], cfg.shared_bytes)
                assert launch.grid_blocks(2, 2 * w, 3 * w, w) == cfg.grid[0] == 12
        name, bucket, _, _ = plan(dtype, launch.NodeSettings(32, None, 16, 0))  # channel count not known at build time
        assert bucket == (64, 64) and name == f"gswa_fwd_{dtype}"
    with pytest.raises(ValueError):
        plan("f32", launch.NodeSettings(32, 8, 12, 0))


def test_scale_bits_roundtrip():
    import struct

    for scale in (32**-0.5, 0.125, 1.0, 10**-0.5):
        bits = launch.scale_bits(scale)
        assert -(2**31) <= bits < 2**31
        assert struct.unpack("<f", struct.pack("<i", bits))[0] == pytest.approx(scale, rel=1e-7)
    assert launch.kernel_scalar_args(1, 72, 16, 32, launch.NodeSettings(32, 8, 16, 8, 0.5))[-1] == 0x3F000000


def test_qdp_attributes_survive_numpy_2_4_field_conversion():
    """tensorrt.plugin hands NDArray-annotated attributes over as ``field.data.astype(dtype)`` (a length-1
    array); built-in ``int`` / ``float`` annotations go through ``int(field.data)``, which NumPy >= 2.4 rejects.
    The QDP declares NDArray[int32] / NDArray[float32] (the C++ creator's kINT32 / kFLOAT32) and reads them with
    attr_scalar."""
    import typing

    import numpy as np

    from agileir.runtime.tensorrt.qdp import attr_annotations, attr_scalar

    ann = attr_annotations()
    assert list(ann) == ["window_size", "shift_size", "key_dim", "scale"]
    expected = {"window_size": np.int32, "shift_size": np.int32, "key_dim": np.int32, "scale": np.float32}
    for name, a in ann.items():
        assert typing.get_origin(a) is np.ndarray, name
        dtype_arg = typing.get_args(a)[1]
        assert typing.get_args(dtype_arg)[0] is expected[name], name
    # what the creator receives from the ONNX parser / a PluginField: 1-element arrays
    field = {"window_size": np.array([16], np.int32), "shift_size": np.array([8], np.int32),
             "key_dim": np.array([32], np.int32), "scale": np.array([32**-0.5], np.float32)}
    attrs = {k: v.astype(expected[k]) for k, v in field.items()}
    assert [attr_scalar(attrs[k]) for k in ("window_size", "shift_size", "key_dim")] == [16, 8, 32]
    assert attr_scalar(attrs["scale"], float) == pytest.approx(32**-0.5, rel=1e-7)
    assert isinstance(attr_scalar(attrs["key_dim"]), int)
    assert attr_scalar(7) == 7 and attr_scalar(np.float32(0.5), float) == 0.5
    with pytest.raises(ValueError):
        attr_scalar(np.array([1, 2], np.int32))
    if tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 4):
        with pytest.raises(TypeError):  # the conversion the built-in annotations would hit
            int(field["window_size"])


def test_tensorrt_rtx_plugin_module_is_unusable_in_the_1_7_wheel():
    """tensorrt_rtx.plugin (QDP) re-exports tensorrt_rtx_bindings.plugin, absent from the 1.7 wheels: the QDP
    path reports that in one line and points at the C++ RTX library."""
    import importlib.util

    if importlib.util.find_spec("tensorrt_rtx") is None:
        pytest.skip("tensorrt_rtx is not installed")
    from agileir.runtime.tensorrt.qdp import rtx_qdp_missing

    msg = rtx_qdp_missing()
    code = "import tensorrt_rtx.plugin"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        assert msg is None
        pytest.skip("this TensorRT-RTX has a working tensorrt_rtx.plugin")
    assert "tensorrt_rtx_bindings.plugin" in proc.stderr
    assert msg and "\n" not in msg and "libagileir_trt_plugins_rtx.so" in msg
