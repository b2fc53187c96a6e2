"""Entropy calibration time on the bundled AgileIR-light x4: ONNX Runtime's threshold search (its Python loop,
what the toolkit ran before) against the vectorised search the toolkit runs now, on the same activation
histograms, and the Set5 PSNR of the INT8 variant each one gives.

    nice python bench/calibration_speed.py        # -> bench/results/calibration_speed_cpu.json

Both timings share one measured pair of ORT passes over the calibration images (min/max, then histograms):
`seconds` = passes + that search. Machine load is recorded (os.getloadavg) because this is a shared machine.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SET5 = REPO.parent / "shared" / "data" / "benchmarks" / "Set5"
OUT = REPO / "bench" / "results" / "calibration_speed_cpu.json"


def set5_psnr(graph, scale: int) -> float:
    from agileir.calibration.variants import batch_runner
    from agileir.quality.evaluation import evaluate
    from agileir.upscale.images import upscale_rgb

    run = batch_runner(graph, threads=0)
    return evaluate(lambda rgb: upscale_rgb(run, rgb, scale), SET5, scale).summary()["psnr"]


def main() -> None:
    from agileir.calibration import variants as V
    from agileir.calibration.calibrators import (SETTINGS, _ort_range, _session, build_histograms, entropy_range,
                                                 value_extremes)
    from agileir.calibration.dataset import load_images
    from agileir.calibration.record import Calibration
    from agileir.export.onnx_export import export_onnx
    from agileir.models.load import load_model

    loaded = load_model(None, None, None, fuse=True)
    standard = export_onnx(loaded.model, "standard")
    readers = V.readers_of(standard)
    tensors = sorted(readers)
    images = load_images()
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    run = _session(standard, tensors)
    extremes = value_extremes((run(im.rgb) for im in images), tensors)
    histograms = build_histograms((run(im.rgb) for im in images), "entropy", extremes)
    passes_s = time.perf_counter() - t0
    bins = SETTINGS["entropy"]["num_quantized_bins"]
    searches = {}
    for name, search in (("vectorised", lambda t, h: entropy_range(h, bins)),
                         ("onnxruntime_loop", lambda t, h: _ort_range("entropy", t, h))):
        t0 = time.perf_counter()
        searches[name] = ({t: search(t, h) for t, h in histograms.items()}, time.perf_counter() - t0)
    result = {"model": loaded.path.name, "calibrator": "entropy", "images": len(images),
              "quantized_activations": len(tensors), "steps": 2 * len(images) + len(tensors),
              "ort_passes_s": round(passes_s, 1), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                            "loadavg_start": load_before,
                                                            "loadavg_end": os.getloadavg()},
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    ranges = {}
    for name, (found, seconds) in searches.items():
        ranges[name] = found
        cal = Calibration("entropy", SETTINGS["entropy"], found, readers)
        result[name] = {"search_s": round(seconds, 1), "seconds": round(passes_s + seconds, 1),
                        "search_s_per_tensor": round(seconds / len(tensors), 3),
                        "set5_psnr_int8": round(set5_psnr(V.int8_forms({"standard": standard}, cal)["standard"],
                                                          loaded.config.scale), 4)}
    same = sum(ranges["vectorised"][t] == ranges["onnxruntime_loop"][t] for t in tensors)
    result["identical_ranges"] = f"{same} of {len(tensors)}"
    result["set5_psnr_fp32"] = round(set5_psnr(standard, loaded.config.scale), 4)
    result["speedup"] = round(result["onnxruntime_loop"]["seconds"] / result["vectorised"]["seconds"], 2)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
