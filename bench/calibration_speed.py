"""Entropy calibration time on the bundled AgileIR-light x4: ONNX Runtime's threshold search (its Python loop,
what the toolkit ran before) against the vectorised search the toolkit runs now, on the same activation
histograms, and the Set5 PSNR of the INT8 variant the toolkit now makes.

    nice python bench/calibration_speed.py [--ort-every N]   # -> bench/results/calibration_speed_cpu.json

Both timings share one measured pair of ORT passes over the calibration images (min/max, then histograms):
`seconds` = passes + that search over all tensors. ORT's loop takes ~1.3 s per tensor, so with
--ort-every N it runs on every N-th tensor only (the vectorised search on the same sample is timed too);
its total is then per-tensor time x tensors, marked "extrapolated". Machine load is recorded
(os.getloadavg) because this is a shared machine.
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
    from agileir.upscale.upscaler import CallableRunner, Upscaler

    run = batch_runner(graph, threads=0)
    return evaluate(Upscaler(CallableRunner(run, scale)).upscale_rgb, SET5, scale).summary()["psnr"]


def main(ort_every: int = 1) -> None:
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
    t0 = time.perf_counter()
    found = {t: entropy_range(h, bins) for t, h in histograms.items()}
    vectorised_s = time.perf_counter() - t0
    sample = tensors[::ort_every]
    timed = {}
    for name, search in (("vectorised", lambda t, h: entropy_range(h, bins)),
                         ("onnxruntime_loop", lambda t, h: _ort_range("entropy", t, h))):
        t0 = time.perf_counter()
        timed[name] = ({t: search(t, histograms[t]) for t in sample}, (time.perf_counter() - t0) / len(sample))
    result = {"model": loaded.path.name, "calibrator": "entropy", "images": len(images),
              "quantized_activations": len(tensors), "steps": 2 * len(images) + len(tensors),
              "ort_passes_s": round(passes_s, 1), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                            "loadavg_start": load_before,
                                                            "loadavg_end": os.getloadavg()},
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    ort_total = timed["onnxruntime_loop"][1] * len(tensors)
    cal = Calibration("entropy", SETTINGS["entropy"], found, readers)
    result["vectorised"] = {"search_s": round(vectorised_s, 1), "seconds": round(passes_s + vectorised_s, 1),
                            "search_s_per_tensor": round(vectorised_s / len(tensors), 3),
                            "search_s_per_tensor_on_sample": round(timed["vectorised"][1], 3),
                            "set5_psnr_int8": round(set5_psnr(V.int8_forms({"standard": standard}, cal)["standard"],
                                                              loaded.config.scale), 4)}
    result["onnxruntime_loop"] = {"sampled_tensors": len(sample),
                                  "search_s_per_tensor_on_sample": round(timed["onnxruntime_loop"][1], 3),
                                  "search_s": round(ort_total, 1), "seconds": round(passes_s + ort_total, 1),
                                  "extrapolated": len(sample) < len(tensors)}
    same = sum(timed["onnxruntime_loop"][0][t] == found[t] for t in sample)
    result["identical_ranges_on_sample"] = f"{same} of {len(sample)}"
    result["speedup"] = round(result["onnxruntime_loop"]["seconds"] / result["vectorised"]["seconds"], 2)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ort-every", type=int, default=1, help="run ORT's loop on every N-th tensor only")
    main(parser.parse_args().ort_every)
