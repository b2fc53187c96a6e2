"""Engine cache: `cached_engine` uncached (a TensorRT-RTX build, ahead of time on the CPU) vs cached (a hit: key
computed, entry checked) on one machine.

    python bench/engine_cache_bench.py [--plugin-onnx DIR/model.plugin.onnx] [--plugin-lib LIB] [--side 256]
                                       [--hits 3] [--out bench/results/engine_cache_cpu.json]

Graphs: the tiny AgileIR (tests' TINY_AGILEIR config, random weights) in the standard form, exported here, and,
when --plugin-onnx is given (`agileir-export -o DIR --form plugin`: the bundled default), that plugin-form graph
(needs the RTX plugin library: --plugin-lib or $AGILEIR_TRT_PLUGIN_LIB). Profile: agileir.runtime.engine_profile(side),
what `agileir-infer --backend rtx` builds for inputs whose largest side is --side. Miss: an empty cache folder; hit:
the best of --hits calls on the filled one (the ONNX file's sha256 is part of every hit).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tiny_standard_onnx(path: Path) -> Path:
    import onnx
    import torch

    from agileir.export.onnx_export import annotate, export_onnx
    from agileir.models import SRConfig, build_model

    torch.manual_seed(0)
    config = SRConfig("agileir", 2, 24, (2, 2), (4, 4), 8, 2.0, (6, 6))  # tests/test_models.py TINY_AGILEIR
    model = build_model(config).eval().fuse()
    proto = export_onnx(model, "standard")
    annotate(proto, {"scale": config.scale, "window": config.window_size, "form": "standard",
                     "config": config.to_dict()})
    onnx.save(proto, str(path))
    return path


def measure(onnx_path: Path, side: int, hits: int, plugin_lib: Path | None) -> dict:
    from agileir.runtime import engine_profile
    from agileir.runtime.tensorrt.builder import BuildOptions
    from agileir.runtime.tensorrt.cache import cached_engine

    options = BuildOptions(profile=engine_profile(side), flavour="rtx", plugin_library=plugin_lib)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        engine, built = cached_engine(onnx_path, options, cache, echo=lambda _: None)
        miss = time.perf_counter() - t0
        assert built
        times = []
        for _ in range(hits):
            t0 = time.perf_counter()
            again, built = cached_engine(onnx_path, options, cache, echo=lambda _: None)
            times.append(time.perf_counter() - t0)
            assert again == engine and not built
        return {"onnx": onnx_path.name, "onnx_mib": round(onnx_path.stat().st_size / 2**20, 2),
                "engine_mib": round(engine.stat().st_size / 2**20, 2),
                "profile": {"min": list(options.profile.min), "opt": list(options.profile.opt),
                            "max": list(options.profile.max)},
                "miss_s": round(miss, 3), "hit_s": round(min(times), 4), "hit_s_all": [round(t, 4) for t in times],
                "speedup": round(miss / min(times), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin-onnx", type=Path)
    ap.add_argument("--plugin-lib", type=Path, default=os.environ.get("AGILEIR_TRT_PLUGIN_LIB") or None)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--hits", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "engine_cache_cpu.json")
    args = ap.parse_args()
    import tensorrt_rtx

    rows = []
    with tempfile.TemporaryDirectory() as d:
        rows.append({"graph": "tiny AgileIR, standard form",
                     **measure(tiny_standard_onnx(Path(d) / "tiny.onnx"), args.side, args.hits, None)})
        print(json.dumps(rows[-1]))
    if args.plugin_onnx:
        rows.append({"graph": "bundled default, plugin form",
                     **measure(args.plugin_onnx, args.side, args.hits, args.plugin_lib)})
        print(json.dumps(rows[-1]))
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "gpu": None,
                          "note": "shared 2-core machine, no GPU: TensorRT-RTX builds ahead of time on the CPU"},
              "tensorrt_rtx": tensorrt_rtx.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
