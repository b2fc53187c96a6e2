"""Never silent: the progress abstraction, and a tiny export (--fp16 --int8) and a tiny `agileir calibrate` say what they
do -- every stage line appears, with the elapsed time, on the 'agileir' logger too, with no long gap between lines."""
import logging
import time

import numpy as np
import pytest

from agileir.io.progress import Progress
from agileir.models import build_model
from agileir.models.load import save_safetensors
from conftest import randomized
from test_models import TINY_AGILEIR

MAX_GAP_S = 10.0  # on an idle machine; the limit scales with the load average per CPU (a shared CI runner)


def gap_limit() -> float:
    import os

    return MAX_GAP_S * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


class Capture:
    """A Progress whose lines are kept with their time, and whose events are kept."""

    def __init__(self, heartbeat_s: float = 5.0):
        self.lines: list[tuple[float, str]] = []
        self.events = []
        self.start = time.perf_counter()
        self.progress = Progress(lambda line: self.lines.append((time.perf_counter(), line)), self.events.append,
                                 heartbeat_s=heartbeat_s)

    def text(self) -> list[str]:
        return [line for _, line in self.lines]

    def longest_gap(self, end: float) -> float:
        stamps = [self.start] + [t for t, _ in self.lines] + [end]
        return max(b - a for a, b in zip(stamps, stamps[1:]))

    def timeline(self) -> str:
        return "\n".join(f"{t - self.start:7.1f}  {line}" for t, line in self.lines)

    def ended(self) -> set[tuple[str, str]]:
        return {(e.label, e.stage) for e in self.events if e.kind == "end"}


def test_stage_lines_counts_heartbeat_and_logging(caplog):
    capture = Capture(heartbeat_s=0.2)
    with caplog.at_level(logging.INFO, logger="agileir"):
        with capture.progress.stage("export", total=2, counts_stages=True) as overall:
            with capture.progress.stage("trace", "standard", what="TorchScript trace"):
                time.sleep(0.7)  # no count: the heartbeat repeats the line with the elapsed time
            with capture.progress.stage("validate", "standard", total=3) as step:
                for _ in range(3):
                    step.advance()
    lines = capture.text()
    assert lines[0] == "export ..." and lines[1] == "[standard] TorchScript trace ..."
    beats = [line for line in lines if line.startswith("[standard] TorchScript trace ... ") and line.endswith(" s")]
    assert 2 <= len(beats) <= 4, lines
    assert any(line.startswith("[standard] trace: 0.") for line in lines)
    assert lines[-1].startswith("export: ") and overall.done == 2  # each inner stage ended advances the outer count
    advances = [e.done for e in capture.events if e.kind == "advance" and e.stage == "validate"]
    assert advances == [1, 2, 3]
    assert [r.getMessage() for r in caplog.records if r.name == "agileir"] == lines


def test_a_failing_stage_prints_no_end_line():
    capture = Capture()
    with pytest.raises(RuntimeError):
        with capture.progress.stage("fold", "standard"):
            raise RuntimeError("boom")
    assert capture.text() == ["[standard] fold ..."] and not capture.ended()


@pytest.fixture(scope="module")
def tiny_agileir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny_agileir.safetensors"
    save_safetensors(randomized(build_model(TINY_AGILEIR)), path)
    return path


def test_export_fp16_int8_says_what_it_does(tiny_agileir, tmp_path):
    from agileir.calibration.dataset import DATA_DIR
    from agileir.calibration.writer import VariantOptions
    from agileir.deploy.export import ExportRequest, claim_export, export_checkpoint

    request = ExportRequest(str(tiny_agileir), tmp_path / "out", ("standard", "plugin"),
                            variants=VariantOptions(fp16=True, int8=True, calibrator="max", calib_dir=DATA_DIR))
    capture = Capture()
    result = export_checkpoint(request, claim_export(request), progress=capture.progress)
    end = time.perf_counter()
    assert not result.failed
    lines = capture.text()
    for form in ("standard", "plugin"):
        for stage in ("trace", "clean", "fold", "shapes", "validate", "write"):
            assert (form, stage) in capture.ended(), (form, stage)
            assert any(line.startswith(f"[{form}] {stage}: ") and line.endswith(" s") for line in lines), (form, stage)
        for precision in ("fp16", "int8"):
            assert (f"{form} {precision}", "validate") in capture.ended() and (f"{form} {precision}", "write") in capture.ended()
        assert (f"{form} fp16", "fp16 convert") in capture.ended()
    assert ("int8", "calibrate") in capture.ended() and ("int8", "quantize") in capture.ended()
    calibrated = [e for e in capture.events if e.stage == "calibrate" and e.kind == "advance"]
    assert calibrated and calibrated[-1].done == calibrated[-1].total  # a counted stage: its bar reaches the end
    assert capture.longest_gap(end) <= gap_limit(), capture.timeline()


def test_calibrate_says_what_it_does(tiny_agileir, tmp_path):
    from agileir.calibration.dataset import DATA_DIR
    from agileir.calibration.study import ReportOptions, calibration_report
    from agileir.runtime.pytorch import load_checked_model
    from test_calibration import _benchmark

    set5 = _benchmark(tmp_path, "Set5", 2, [(12, 17), (9, 10)])
    options = ReportOptions([set5], tmp_path / "report", calibrators=("max",), calib_dir=DATA_DIR, threads=1,
                            peers=("ort-minmax",), sweep=True)
    capture = Capture()
    report, _ = calibration_report(load_checked_model(str(tiny_agileir)), options, capture.progress)
    end = time.perf_counter()
    ended = capture.ended()
    assert {("standard", "trace"), ("standard", "fp16 convert"), ("max", "calibrate"), ("max", "quantize"),
            ("attention", "calibrate"), ("", "narrow"), ("ort-minmax", "quantize"), ("", "evaluate")} <= ended, ended
    assert capture.longest_gap(end) <= gap_limit(), capture.timeline()
    # the latency column: every variant measured interleaved in one place, median and spread, threads and load
    latency = report["model"]["latency"]
    assert latency["order"].startswith("interleaved") and latency["threads"] == 1 and len(latency["loadavg_before"]) == 3
    measured = [v for v in report["variants"] if not v.get("skipped")]
    assert len(latency["ms"]) == len(measured) >= 4
    for v in measured:
        lat = v["cpu_latency"]
        assert lat["rounds"] == latency["rounds"] and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
        assert np.isclose(v["cpu_latency_ms"], lat["median_ms"])


def test_interleaved_rotates_the_order_every_round():
    from agileir.runtime.bench import interleaved

    order = []
    result = interleaved({name: (lambda name=name: order.append(name)) for name in "abc"}, rounds=3, warmup=1)
    assert order == list("abc") + list("abc") + list("bca") + list("cab")  # warm-ups, then rotated rounds
    assert all(r["rounds"] == 3 and r["min_ms"] <= r["median_ms"] <= r["max_ms"] for r in result.values())


def test_interleaved_fresh_keeps_one_call_alive_at_a_time():
    """The calibration report's latency column: each timed run gets a fresh session, warmed up, then freed."""
    from agileir.runtime.bench import interleaved_fresh

    alive, most, order = set(), [0], []

    class Session:
        def __init__(self, name):
            self.name = name
            alive.add(id(self))
            most[0] = max(most[0], len(alive))

        def __call__(self):
            order.append(self.name)

        def __del__(self):
            alive.discard(id(self))

    result = interleaved_fresh({name: (lambda name=name: Session(name)) for name in "abc"}, rounds=3, warmup=1)
    assert most[0] == 1  # never two sessions at once
    assert order == [n for n in "abcbcacab" for _ in range(2)]  # warm-up + timed run, rotated rounds
    assert all(r["rounds"] == 3 for r in result.values())
    with pytest.raises(ValueError):
        interleaved_fresh({"a": lambda: (lambda: None)}, rounds=0)
