"""The manifest of a batch job and resume: what a run did per image, and which outputs a rerun may keep.

manifest.json (atomic, claimed in the run's output gate): the job's header (RESUME_KEYS among it), counts, and one
entry per image: input, output, status ('ok', 'skipped' = kept from an earlier run, 'failed'), error, notes,
sha256 of the output, seconds. A rerun keeps an output only when its bytes still match the recorded sha256 and the
header's RESUME_KEYS are the same (another model or tiling writes other bytes), so a stale or damaged file is
redone.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..io.gate import OutputGate, file_sha256
from ..upscale.stages import ImageItem

MANIFEST_FORMAT = "agileir-batch/1"
MANIFEST_KIND = "batch manifest"  # its kind of output in the gate
RESUME_KEYS = ("model", "backend", "scale", "tile", "tile_overlap", "max_memory")  # others redo everything


def recorded_hashes(manifest: Path, header: dict | None = None) -> dict[str, str]:
    """output path -> the sha256 a previous run's manifest recorded for it (outputs it wrote or kept); none
    when that run's RESUME_KEYS differ from `header`'s."""
    try:
        previous = json.loads(manifest.read_text())
        items = previous.get("items", [])
    except (OSError, ValueError, AttributeError):
        return {}
    if header is not None and any(previous.get(k) != header.get(k) for k in RESUME_KEYS):
        return {}
    return {os.path.abspath(item["output"]): str(item["sha256"]) for item in items
            if isinstance(item, dict) and item.get("sha256") and item.get("status") in ("ok", "skipped")}


def output_is_complete(output: str | Path, sha256: str | None) -> bool:
    """The resume check: the output exists and its bytes are the ones the manifest recorded."""
    try:
        return bool(sha256) and os.path.isfile(output) and file_sha256(output) == sha256
    except OSError:
        return False


def entry(item: ImageItem) -> dict:
    """An item as the manifest records it."""
    return {"input": str(item.source), "output": str(item.output), "status": item.status,
            "error": item.error, "notes": list(item.notes), "sha256": item.sha256 if item.ok or item.reused else None,
            "seconds": round(item.seconds, 4)}


@dataclass
class BatchResult:
    items: list[ImageItem]
    seconds: float
    manifest: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    def summary(self) -> str:
        done = self.counts.get("ok", 0)
        rate = done / self.seconds if self.seconds > 0 else 0.0
        return (f"{len(self.items)} images: {done} upscaled, {self.counts.get('skipped', 0)} skipped (already done), "
                f"{self.failed} failed in {self.seconds:.1f} s ({rate:.2f} images/s); manifest {self.manifest}")


def write_manifest(items: list[ImageItem], seconds: float, manifest: Path, header: dict,
                   gate: OutputGate) -> BatchResult:
    """The manifest of `items` (in input order) through `gate` (its folder made, if need be)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    payload = {**header, "seconds": round(seconds, 3), "counts": counts, "items": [entry(i) for i in items]}
    gate.write_json(manifest, payload, MANIFEST_KIND)
    return BatchResult(items, seconds, manifest, counts)


__all__ = ["BatchResult", "MANIFEST_FORMAT", "MANIFEST_KIND", "RESUME_KEYS", "entry", "output_is_complete",
           "recorded_hashes", "write_manifest"]
