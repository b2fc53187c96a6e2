"""The calibration study job of `agileir calibrate`: a checkpoint -> every INT8 calibrator, other tools' INT8 and
other bit widths evaluated on benchmarks -> calibration_report.{json,md,png}, from one CalibrateRequest.

    request = CalibrateRequest(ReportOptions([Path("Set5")]), checkpoint="model.pth")
    report, paths = calibrate_checkpoint(request, claim_calibration(request))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPORT_KIND = "calibration report"


@dataclass(frozen=True)
class CalibrateRequest:
    """`report` an agileir.calibration.study.ReportOptions (eval sets, out folder, calibrators, peers, rows ...);
    `checkpoint` None: the bundled AgileIR-light x4; `preset` / `upstream_compat` as for every checkpoint."""

    report: Any
    checkpoint: str | None = None
    preset: str | None = None
    upstream_compat: bool = False

    def inputs(self) -> list[Path]:
        from ..io.outputs import input_files
        from ..models.load import default_checkpoint

        r = self.report
        return [Path(self.checkpoint) if self.checkpoint else default_checkpoint(),
                *input_files(*r.eval_dirs, r.calib_dir)]


def claim_calibration(request: CalibrateRequest, overwrite: bool = False):
    """The study's OutputGate: the checkpoint, eval sets and calibration images its inputs, every report file
    claimed now, before the model loads."""
    from ..io.gate import OutputGate

    gate = OutputGate(request.inputs(), overwrite)
    gate.claim_all(request.report.planned_outputs(), REPORT_KIND)
    return gate


def calibrate_checkpoint(request: CalibrateRequest, gate, progress: Any = None,
                         echo: Callable[[str], None] | None = print):
    """Load and probe the checkpoint, run the study (agileir.calibration.study.calibration_report) through `gate`
    (claim_calibration) and record what it wrote; returns (report dict, written paths)."""
    from ..calibration.study import calibration_report
    from ..runtime.pytorch import load_checked_model

    loaded = load_checked_model(request.checkpoint, request.preset, request.upstream_compat)
    with gate.publishing():  # each report's ledger line durable before it is renamed into place
        report, paths = calibration_report(loaded, request.report, progress, echo)
    for path in request.report.planned_outputs():
        if path.is_file():
            gate.record(path, REPORT_KIND)
    return report, paths


__all__ = ["CalibrateRequest", "calibrate_checkpoint", "claim_calibration"]
