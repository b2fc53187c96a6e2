"""The engine cache with real TensorRT-RTX builds (CPU, ahead of time): a hit reuses the entry; a change of any
key field (ONNX bytes, form, precision, profile, flavour/version, targets) misses; stale, foreign or corrupt
entries are rebuilt, never loaded; concurrent builders of one key build once and leave a valid entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from agileir.calibration.fp16 import to_fp16
from agileir.export.onnx_export import annotate, export_onnx
from agileir.models import build_model
from conftest import randomized
from test_models import TINY_SWINIR
from test_rtx_plugin import rtx_library  # noqa: F401  (session fixture)

pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (pip install 'agileir[rtx]')")

from agileir.runtime.tensorrt.builder import BuildOptions, ShapeProfile  # noqa: E402
from agileir.runtime.tensorrt.cache import KEY, cached_engine, engine_key, entry_is_valid  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OPTIONS = BuildOptions(profile=ShapeProfile((1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 32, 32)), flavour="rtx")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache_onnx")
    model = randomized(build_model(TINY_SWINIR)).fuse()
    paths = {}
    for form in ("standard", "plugin"):
        proto = export_onnx(model, form)
        annotate(proto, {"scale": 3, "window": 8, "form": form})
        paths[form] = root / f"{form}.onnx"
        onnx.save(proto, str(paths[form]))
    fp16 = to_fp16(export_onnx(model, "standard"))
    annotate(fp16, {"scale": 3, "window": 8, "form": "standard"})
    paths["fp16"] = root / "fp16.onnx"
    onnx.save(fp16, str(paths["fp16"]))
    return paths


def quiet(_):
    pass


def test_hit_miss_and_rebuild(graphs, tmp_path, rtx_library):  # noqa: F811
    cache = tmp_path / "cache"
    first, built = cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    assert built and first.is_file() and first.with_suffix(".json").is_file()
    stamp = first.stat().st_mtime_ns
    again, built = cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    assert (again, built) == (first, False) and first.stat().st_mtime_ns == stamp  # hit: nothing rebuilt

    variants = {
        "profile": (graphs["standard"], replace(OPTIONS, profile=ShapeProfile((1, 3, 8, 8), (1, 3, 24, 24), (1, 3, 32, 32)))),
        "targets": (graphs["standard"], replace(OPTIONS, compute_capabilities=("86",))),
        "precision": (graphs["fp16"], OPTIONS),
        "form": (graphs["plugin"], replace(OPTIONS, plugin_library=rtx_library)),
    }
    entries = {first.parent}
    for field, (path, options) in variants.items():
        engine, built = cached_engine(path, options, cache, quiet)
        assert built and engine.parent not in entries, field
        entries.add(engine.parent)
        assert json.loads(engine.with_suffix(".json").read_text())["flavour"] == "rtx"
    sha_changed = tmp_path / "changed.onnx"
    proto = onnx.load(str(graphs["standard"]))
    annotate(proto, {"scale": 3, "window": 8, "form": "standard", "note": "other bytes"})
    onnx.save(proto, str(sha_changed))
    engine, built = cached_engine(sha_changed, OPTIONS, cache, quiet)
    assert built and engine.parent not in entries


@pytest.mark.parametrize("damage", ["version", "flavour", "engine-bytes", "no-sidecar"])
def test_stale_foreign_or_corrupt_entries_are_rebuilt(graphs, tmp_path, damage):
    cache = tmp_path / "cache"
    engine, _ = cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    key = json.loads((engine.parent / KEY).read_text())
    if damage in ("version", "flavour"):  # as if another TensorRT(-RTX) had written this entry
        key[damage] = {"version": "0.9.0", "flavour": "tensorrt"}[damage]
        (engine.parent / KEY).write_text(json.dumps(key))
    elif damage == "engine-bytes":
        engine.write_bytes(engine.read_bytes()[:-16] + b"\0" * 16)
    else:
        engine.with_suffix(".json").unlink()
    assert not entry_is_valid(engine.parent, engine_key(graphs["standard"], OPTIONS))
    rebuilt, built = cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    assert built and rebuilt == engine and entry_is_valid(engine.parent, engine_key(graphs["standard"], OPTIONS))
    assert not [p for p in cache.iterdir() if p.name.endswith((".building", ".stale"))]


CONCURRENT = r"""
import json, sys
from agileir.runtime.tensorrt.builder import BuildOptions, ShapeProfile
from agileir.runtime.tensorrt.cache import cached_engine
options = BuildOptions(profile=ShapeProfile((1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 32, 32)), flavour="rtx")
path, built = cached_engine(sys.argv[1], options, sys.argv[2], lambda m: None)
print("RESULT " + json.dumps([str(path), built]))
"""


def test_concurrent_builders_build_once(graphs, tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(graphs["standard"]), str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:]))
    assert len({path for path, _ in results}) == 1
    assert sum(built for _, built in results) == 1  # the others waited on the lock and found the entry
    assert entry_is_valid(Path(results[0][0]).parent, engine_key(graphs["standard"], OPTIONS))
    assert not [p for p in cache.iterdir() if p.name.endswith((".building", ".stale"))]


# -- agileir-infer MODEL.onnx --backend rtx: engine built once into the cache, then reused ------------------
@pytest.mark.parametrize("form", ["standard", "plugin"])
def test_infer_builds_then_reuses_the_cached_engine(graphs, tmp_path, rtx_library, monkeypatch, form):  # noqa: F811
    from click.testing import CliRunner
    from PIL import Image

    from agileir.cli import main
    from agileir.runtime import engine_profile

    monkeypatch.setenv("AGILEIR_TRT_PLUGIN_LIB", str(rtx_library))
    img = tmp_path / "in.png"
    Image.new("RGB", (20, 14), (90, 120, 200)).save(img)
    cache, out = tmp_path / "cache", tmp_path / "out.png"
    args = ["infer", str(graphs[form]), str(img), "-o", str(out), "--backend", "rtx", "--engine-cache", str(cache)]
    key = engine_key(graphs[form], BuildOptions(profile=engine_profile(20), flavour="rtx"))
    stamps = []
    for attempt in ("built", "reused"):
        r = CliRunner().invoke(main, args)
        errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        # TensorRT-RTX builds without a GPU; running the engine needs one: exit 3, one line, nothing written
        assert r.exit_code == 3 and len(errors) == 1, r.output
        assert "Traceback" not in r.output and not out.exists()
        assert f"engine: {attempt}" in r.stderr, r.stderr
        entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
        assert len(entries) == 1 and entry_is_valid(entries[0], key)
        stamps.append((entries[0] / "engine.plan").stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the second run rebuilt nothing
    assert engine_profile(20).max == (1, 3, 64, 64) and engine_profile(5000).max == (1, 3, 1024, 1024)



HOLD_LOCK = r"""
import fcntl, sys, time
from pathlib import Path
cache, digest = Path(sys.argv[1]), sys.argv[2]
lock = open(cache / f".{digest}.lock", "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
staging = cache / f".{digest}.0badf00d.building"
staging.mkdir()
(staging / "engine.plan").write_bytes(b"half an engine")
print("BUILDING", flush=True)
time.sleep(600)
"""


def test_staging_of_a_killed_builder_is_removed_at_the_next_access(graphs, tmp_path):
    import signal

    from agileir.runtime.tensorrt.cache import sweep_orphans

    cache = tmp_path / "cache"
    engine, _ = cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    digest = engine.parent.name
    builder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(cache), digest], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout.readline().strip() == "BUILDING"
        staging = cache / f".{digest}.0badf00d.building"
        assert sweep_orphans(cache) == [] and staging.is_dir()  # its builder is alive: kept
        os.kill(builder.pid, signal.SIGKILL)
        builder.wait(timeout=30)
        assert staging.is_dir()  # what a killed builder leaves
        again, built = cached_engine(graphs["standard"], OPTIONS, cache, quiet)  # the next cache access
        assert again == engine and not built and not staging.exists()
    finally:
        if builder.poll() is None:
            builder.kill()
            builder.wait()


def test_a_folder_that_is_not_a_cache_entry_is_refused_not_removed(graphs, tmp_path):
    from agileir.io.gate import OutputConflict

    cache = tmp_path / "cache"
    entry = cache / engine_key(graphs["standard"], OPTIONS).digest
    entry.mkdir(parents=True)
    (entry / "notes.txt").write_text("mine")
    with pytest.raises(OutputConflict, match="not a cache entry"):
        cached_engine(graphs["standard"], OPTIONS, cache, quiet)
    assert (entry / "notes.txt").read_text() == "mine"
