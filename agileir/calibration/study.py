"""`agileir calibrate` as one library call: export, calibrate with every toolkit calibrator, quantize with the
peer tools, narrow to other bit widths, evaluate every row in ONNX Runtime CPU and write the report."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..io.progress import Progress
from . import CALIBRATORS, PEERS
from .memory import release_memory

SWEEP_CALIBRATORS = ("max", "percentile")  # range independent of the bit width: MinMax / Percentile rows


@dataclass
class ReportOptions:
    eval_dirs: list[Path]
    out_dir: Path = Path("calibration_report")
    scale: int | None = None  # None: the model's
    calibrators: tuple[str, ...] = CALIBRATORS
    calib_dir: Path | None = None  # None: the bundled calibration set
    form: str = "standard"
    fp16: bool = True
    fp16_study: bool = False
    threads: int = 0  # ORT threads for evaluation and latency (0: all)
    peers: tuple[str, ...] = PEERS
    sweep: bool = True  # W6A6, W4A4, W8, W4 rows
    attention: bool = True  # a row with the attention products in INT8 too
    notes: dict = field(default_factory=dict)
    memory_budget: int | None = None  # bytes a peer's calibration may take (None: agileir.upscale.memory's default)

    def planned_outputs(self) -> list[Path]:
        from .report import REPORT_NAMES

        return [self.out_dir / n for n in REPORT_NAMES] + [self.calibration_file(c) for c in self.calibrators]

    def calibration_file(self, calibrator: str) -> Path:
        return self.out_dir / f"calibration_{calibrator}.json"

    def sweep_calibrators(self) -> tuple[str, ...]:
        return tuple(c for c in SWEEP_CALIBRATORS if c in self.calibrators) or self.calibrators[:1]


def check_inputs(options: ReportOptions, model_scale: int) -> list[int]:
    """Bad input fails here in one line, before minutes of work; returns each eval set's image count."""
    from ..quality.evaluation import benchmark_pairs

    scale = options.scale or model_scale
    if scale != model_scale:
        raise ValueError(f"the model upscales x{model_scale}, not x{scale}")
    if len({d.name for d in options.eval_dirs}) != len(options.eval_dirs):
        raise ValueError("--eval folders must have distinct names (they label the report columns)")
    if options.calib_dir and not Path(options.calib_dir).is_dir():
        raise ValueError(f"calibration folder not found: {options.calib_dir}")
    return [len(benchmark_pairs(d, scale)) for d in options.eval_dirs]


def calibration_report(loaded, options: ReportOptions, progress: Progress | None = None,
                       echo: Callable[[str], None] | None = print):
    """The report's dict and the files written. Every stage (export, each calibrator, attention, each peer,
    evaluation, FP16 study) is reported through `progress` (agileir.io.progress; None: lines to `echo`)."""
    from ..export.onnx_export import export_onnx
    from ..io.progress import as_progress
    from ..io.outputs import OutputFolder
    from . import report as R
    from .dataset import load_images
    from .fp16 import to_fp16
    from .memory import SpilledGraphs

    sizes = check_inputs(options, loaded.config.scale)
    scale = loaded.config.scale
    images = load_images(options.calib_dir)
    OutputFolder(options.out_dir).ensure()
    progress = as_progress(progress, echo)
    forms = {"standard": export_onnx(loaded.model, "standard", progress=progress)}
    if options.form != "standard":
        forms[options.form] = export_onnx(loaded.model, options.form, progress=progress)
    with SpilledGraphs() as graphs:  # ~19 variant graphs, held on disk while the later passes run
        graphs["fp32"] = forms[options.form]
        if options.fp16:
            with progress.stage("fp16 convert", options.form, what="FP16 conversion"):
                graphs["fp16"] = to_fp16(forms[options.form])
        report = _variant_report(loaded, forms, graphs, images, options, progress, sizes)
    paths = R.write_report(report, options.out_dir)  # written before the slow FP16 study, rewritten with it
    if options.fp16_study:
        report["fp16_study"] = _fp16_study(forms["standard"], options.eval_dirs[0], scale, progress)
        paths = R.write_report(report, options.out_dir)
    return report, paths


def _variant_report(loaded, forms, graphs, images, options: ReportOptions, progress: Progress, sizes) -> dict:
    """Every variant row (toolkit calibrators, attention, bit widths, peers), evaluated and timed."""
    from ..quality.evaluation import evaluate
    from . import report as R

    scale = loaded.config.scale
    info = {"file": loaded.path.name, "sha256": loaded.sha256, "arch": loaded.config.arch, "preset": loaded.preset,
            "scale": scale, "form": options.form, "threads": options.threads,
            "loadavg": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "calibration_images": f"{len(images)} images from {options.calib_dir or 'the bundled set'}", **options.notes}
    variants = _toolkit_rows(loaded, forms, graphs, images, options, progress)
    if options.form == "standard":
        variants += _peer_rows(forms["standard"], graphs, images, options, progress)
    evaluated = sum(1 for v in variants if not v.skipped)
    with progress.stage("evaluate", total=evaluated * sum(sizes) + 1,
                        what=f"evaluating {evaluated} variants on {sum(sizes)} images, then their latency") as step:
        report = R.build_report(info, graphs, variants, options.eval_dirs, scale, evaluate, step.advance)
        step.advance()
    return report


def _toolkit_rows(loaded, forms, graphs, images, options: ReportOptions, progress: Progress) -> list:
    """Calibrate with each toolkit calibrator (INT8 rows), then the attention and bit-width rows from them."""
    from . import variants as V
    from .attention import attention_int8
    from .bits import SWEEP, narrowed
    from .calibrators import progress_steps
    from .report import Variant, variant_list

    rows = variant_list((), fp16=options.fp16)
    calibrations = {}
    tensors = len(V.readers_of(forms["standard"]))
    for calibrator in options.calibrators:
        t0 = time.perf_counter()
        with progress.stage("calibrate", calibrator, total=progress_steps(calibrator, len(images), tensors),
                            what=f"calibrating on {len(images)} images") as step:
            cal = V.calibrate(forms["standard"], images, calibrator,
                              {"source_checkpoint": {"file": loaded.path.name, "sha256": loaded.sha256}}, step.advance)
        cal.save(options.calibration_file(calibrator))
        calibrations[calibrator] = cal
        with progress.stage("quantize", calibrator, what="inserting the Q/DQ nodes"):
            graphs[f"int8-{calibrator}"] = V.int8_forms(forms, cal)[options.form]
            release_memory()
        rows.append(Variant(f"int8-{calibrator}", "int8", "W8A8", calibrator,
                            seconds=round(time.perf_counter() - t0, 1)))
    first = options.calibrators[0] if options.calibrators else None
    if options.attention and first and options.form == "standard":
        t0 = time.perf_counter()
        with progress.stage("calibrate", "attention", what=f"calibrating the attention products ({first})"):
            graphs[f"int8-{first}-attention"] = attention_int8(forms["standard"], calibrations[first],
                                                               [im.rgb for im in images])
        rows.append(Variant(f"int8-{first}-attention", "int8", "W8A8", first, kind="attention",
                            seconds=round(time.perf_counter() - t0, 1)))
    if options.sweep:
        pairs = [(c, bits) for c in options.sweep_calibrators() for bits in SWEEP[1:]]  # W8A8: the INT8 row itself
        with progress.stage("narrow", total=len(pairs), what="fake-quantizing the other bit widths") as step:
            for calibrator, bits in pairs:
                name = f"{calibrator}-{bits.label.lower()}"
                graphs[name] = narrowed(graphs[f"int8-{calibrator}"], graphs["fp32"], bits)
                rows.append(Variant(name, "int8", bits.label, calibrator, kind="sweep",
                                    tool="agileir (fake-quantized with int8 Q/DQ)"))
                step.advance()
    return rows


def _peer_rows(standard, graphs, images, options: ReportOptions, progress: Progress) -> list:
    from .peers import run_peer
    from .report import Variant

    rows = []
    for name in options.peers:
        with progress.stage("quantize", name, what="quantizing the FP32 graph with the calibration images") as step:
            result = run_peer(name, standard, [im.rgb for im in images], options.memory_budget)
            if result.memory.get("estimate_bytes"):
                step.note(f"calibration memory estimate {result.memory['estimate_bytes'] / 2**30:.2f} GiB, "
                          f"budget {result.memory['budget_bytes'] / 2**30:.2f} GiB")
            if result.graph is not None:
                graphs[name] = result.graph
            else:
                step.note(f"skipped: {result.skipped}")
        rows.append(Variant(name, "int8", "W8A8", None, kind="peer", tool=result.tool, skipped=result.skipped,
                            seconds=result.seconds))
        del result
        release_memory()  # the peer's calibration tensors and sessions, before the next peer
    return rows


def _fp16_study(standard, dataset: Path, scale: int, progress: Progress) -> dict:
    """FP16 op-blocking study on the smallest LR image of `dataset` (it runs the graph about 25 times)."""
    from PIL import Image

    from ..io.images import read_image
    from ..quality.evaluation import benchmark_pairs
    from .fp16_study import block_study

    def pixels(path):
        with Image.open(path) as im:
            return im.width * im.height

    lr_path = min((lr for _, lr in benchmark_pairs(dataset, scale)), key=pixels)
    with progress.stage("fp16 study", what="FP16 op-blocking study") as step:
        rows = block_study(standard, read_image(lr_path).to_rgb(), progress=step.advance)
    return {"image": f"{dataset.name}/{lr_path.name}", "form": "standard", "rows": rows}
