"""Folder runs pipelined (agileir.upscale.pipeline) vs the serial loop, and frames/s of a short video, on one machine.

    python bench/pipeline_bench.py [--model CKPT] [--images 20] [--size 48] [--repeats 2]
                                   [--out bench/results/pipeline_cpu.json]

Images: --images crops of --size px from Set14 LR x4 (../shared/data) when present, else random images.
The serial loop is agileir-infer's (read_image -> upscale_image -> write_image); the pipelined runs use
agileir.upscale.files.upscale_files (batch 1 and batch 4). Passes alternate (serial, serial from a worker
thread, pipelined, batched, serial, ...) and the best of --repeats is kept, because the machine may be shared. PyTorch backend, the
bundled SwinIR-light x4 by default. The video row upscales a generated 24-frame 48x32 H.264 + AAC clip.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SET14 = REPO.parent / "shared" / "data" / "benchmarks" / "Set14" / "LR_bicubic" / "X4"


def make_images(folder: Path, count: int, size: int) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    sources = sorted(SET14.glob("*.png")) if SET14.is_dir() else []
    for i in range(count):
        if sources:
            im = np.asarray(Image.open(sources[i % len(sources)]).convert("RGB"))
            y = rng.integers(0, max(1, im.shape[0] - size))
            x = rng.integers(0, max(1, im.shape[1] - size))
            crop = im[y:y + size, x:x + size]
            if crop.shape[:2] != (size, size):
                crop = np.asarray(Image.fromarray(crop).resize((size, size)))
        else:
            crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(crop).save(folder / f"{i:03d}.png")
    return f"Set14 LR x4 crops {size}x{size}" if sources else f"random {size}x{size}"


def serial_pass(runner, sources, out: Path) -> dict:
    from agileir.io.images import read_image, write_image
    from agileir.upscale.arrays import apply_to_images

    stages = {"decode": 0.0, "infer": 0.0, "encode": 0.0}
    began = time.perf_counter()
    for src in sources:
        t0 = time.perf_counter()
        image = read_image(src)
        t1 = time.perf_counter()
        r = apply_to_images(runner.upscale, [image], runner.scale, align=runner.window)[0]
        t2 = time.perf_counter()
        write_image(out / src.name, r.rgb, r.alpha, r.bit_depth)
        t3 = time.perf_counter()
        stages["decode"] += t1 - t0
        stages["infer"] += t2 - t1
        stages["encode"] += t3 - t2
    wall = time.perf_counter() - began
    return {"seconds": wall, "images_per_s": len(sources) / wall,
            "ms_per_image": {k: 1000 * v / len(sources) for k, v in stages.items()}}


def serial_in_thread(runner, sources, out: Path) -> dict:
    """The serial loop run from one worker thread: separates the threading effect from the overlap."""
    import threading

    box: dict = {}
    t = threading.Thread(target=lambda: box.update(serial_pass(runner, sources, out)))
    t.start()
    t.join()
    return box


def pipelined_pass(runner, sources, out: Path, batch: int) -> dict:
    from agileir.upscale.files import upscale_files
    from agileir.upscale.options import PipelineOptions, TilingOptions
    from agileir.upscale.upscaler import Upscaler

    began = time.perf_counter()
    result = upscale_files(Upscaler(runner, TilingOptions(tile=0)), {s: out / s.name for s in sources},
                           PipelineOptions(batch=batch))
    wall = time.perf_counter() - began
    assert not result.failed, [r.error for r in result.failed]
    return {"seconds": wall, "images_per_s": len(sources) / wall, "batch": batch}


def video_pass(runner, folder: Path) -> dict:
    from fractions import Fraction

    import av

    from agileir.upscale.options import EncodingOptions, TilingOptions
    from agileir.upscale.upscaler import Upscaler
    from agileir.upscale.video import upscale_video

    src = folder / "clip.mp4"
    rng = np.random.default_rng(1)
    n, w, h, fps = 24, 48, 32, 24
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        for i in range(n):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in vs.encode(f):
                out.mux(p)
        for k in range(0, 48000 * n // fps, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = 48000, k, Fraction(1, 48000)
            for p in aus.encode(af):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode(None):
                out.mux(p)
    result = upscale_video(Upscaler(runner, TilingOptions(tile=0)), src, folder / "clip_x4.mp4",
                           EncodingOptions(codec="libx264", crf=18))
    return {"clip": f"{n} frames {w}x{h} at {fps} fps, H.264 + AAC", "output": "libx264 crf 18 yuv420p",
            "frames": result.frames, "seconds": result.seconds, "frames_per_s": result.fps,
            "size": list(result.size), "copied_streams": result.copied_streams, "pyav": av.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "agileir" / "weights" / "swinir_light_x4.safetensors"))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "pipeline_cpu.json"))
    parser.add_argument("--omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY for this run ('' keeps the environment's). PASSIVE by default: on an "
                             "oversubscribed machine OpenMP's spin-waiting made model calls from the main thread "
                             "(the serial loop) up to 20x slower than from a worker thread, which is not what "
                             "this bench compares")
    args = parser.parse_args()
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # before torch starts its OpenMP runtime

    import torch

    from agileir.io.atomic import write_json
    from agileir.runtime import load_runner

    runner = load_runner(args.model, backend="pytorch")
    work = Path(tempfile.mkdtemp(prefix="agileir-pipeline-bench-"))
    try:
        images = work / "in"
        images.mkdir()
        data = make_images(images, args.images, args.size)
        sources = sorted(images.glob("*.png"))
        outs = {name: work / name for name in ("serial", "serial_thread", "pipelined", "batched")}
        for o in outs.values():
            o.mkdir()
        serial_pass(runner, sources[:2], outs["serial"])  # warm-up
        runs: dict[str, list[dict]] = {"serial": [], "serial_thread": [], "pipelined": [], "batched": []}
        for _ in range(args.repeats):
            runs["serial"].append(serial_pass(runner, sources, outs["serial"]))
            runs["serial_thread"].append(serial_in_thread(runner, sources, outs["serial_thread"]))
            runs["pipelined"].append(pipelined_pass(runner, sources, outs["pipelined"], 1))
            runs["batched"].append(pipelined_pass(runner, sources, outs["batched"], 4))
        best = {k: max(v, key=lambda r: r["images_per_s"]) for k, v in runs.items()}
        try:
            video = video_pass(runner, work)
        except ImportError:
            video = {"skipped": "PyAV not installed (pip install 'agileir[video]')"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "python": sys.version.split()[0], "torch": torch.__version__, "load_average": os.getloadavg(),
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
                 "note": "shared 2-core CPU machine (other jobs running); measured once, best of the repeats"},
        "settings": {"model": Path(args.model).name, "backend": runner.backend, "images": args.images,
                     "data": data, "output": f"{args.size * runner.scale}x{args.size * runner.scale} PNG",
                     "repeats": args.repeats, "decode_workers": 2, "encode_workers": 2, "queue_size": 4},
        "results": {
            "serial": best["serial"], "serial_in_a_worker_thread": best["serial_thread"],
            "pipelined": best["pipelined"], "pipelined_batch4": best["batched"],
            "ratio_pipelined_over_serial": best["pipelined"]["images_per_s"] / best["serial"]["images_per_s"],
            "ratio_pipelined_over_serial_in_a_worker_thread":
                best["pipelined"]["images_per_s"] / best["serial_thread"]["images_per_s"],
            "ratio_batch4_over_serial": best["batched"]["images_per_s"] / best["serial"]["images_per_s"],
            "png_encode_share_of_serial": best["serial"]["ms_per_image"]["encode"] / sum(
                best["serial"]["ms_per_image"].values()),
            "all_runs": runs, "video": video},
    }
    write_json(args.out, payload)
    print(json.dumps(payload["results"] | {"all_runs": "..."}, indent=2))


if __name__ == "__main__":
    main()
