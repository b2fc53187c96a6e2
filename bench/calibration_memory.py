"""Peak memory of the default `agileir calibrate` (bundled model, bundled 16 calibration images, every
calibrator and every peer) under `/usr/bin/time -v`.

    nice -n 10 python bench/calibration_memory.py            # -> bench/results/calibration_memory.json
    python bench/calibration_memory.py --eval DIR [--eval DIR]  # other evaluation sets

By default the evaluation set is two Set5 images (butterfly, bird: the smallest) copied into a temporary
BasicSR-layout folder, the run of the report that was OOM-killed before the peers streamed. Peak RSS is
/usr/bin/time's "Maximum resident set size" (the largest process of the run); the process tree's RSS is
also sampled every 2 s, and the JSON is rewritten while the run goes (`finished: false`), so a long run
shows where it is. Target: peak <= 6 GB (6e9 bytes) and exit 0, every peer row executed or skipped with
its reason.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "results" / "calibration_memory.json"
SET5 = REPO.parent / "shared" / "data" / "benchmarks" / "Set5"
DEFAULT_IMAGES = ("butterfly", "bird")
LIMIT = 6 * 10**9
PEERS = ("ort-", "modelopt", "nncf")


def small_set5(folder: Path, scale: int = 4) -> Path:
    """Two Set5 images in BasicSR layout under folder/Set5."""
    dst = folder / "Set5"
    for sub in ("HR", f"LR_bicubic/X{scale}"):
        (dst / sub).mkdir(parents=True)
    for name in DEFAULT_IMAGES:
        shutil.copy(SET5 / "HR" / f"{name}.png", dst / "HR")
        shutil.copy(SET5 / f"LR_bicubic/X{scale}" / f"{name}x{scale}.png", dst / f"LR_bicubic/X{scale}")
    return dst


def tree_rss(pid: int) -> int:
    """RSS bytes of pid and its descendants (/proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text(), re.M)
            total += int(m.group(1)) * 1024 if m else 0
        except OSError:
            pass
    return total


def time_v(text: str) -> dict:
    def field(label):
        m = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.M)
        return m.group(1).strip() if m else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)") or "0:0"
    seconds = sum(float(p) * 60**i for i, p in enumerate(reversed(wall.split(":"))))
    rss = field("Maximum resident set size (kbytes)")
    return {"peak_rss_bytes": int(rss) * 1024 if rss else None, "wall_s": round(seconds, 1),
            "exit_status": int(field("Exit status") or -1), "user_s": float(field("User time (seconds)") or 0),
            "system_s": float(field("System time (seconds)") or 0)}


def stage_lines(text: str, heartbeats: bool = False) -> list[str]:
    """The run's stage and note lines (progress bars left out, and the 5 s heartbeat repeats unless asked)."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    return [ln for ln in lines if ln and not re.search(r"\d+/\d+ \[|it/s|step/s|\[[WE]:onnxruntime", ln)
            and (heartbeats or not re.search(r"\.\.\. \d+ s(, .*)?$", ln))]


def rows(report: Path) -> list[dict]:
    if not report.is_file():
        return []
    return [{"name": v["name"], "kind": v.get("kind"), "seconds": v.get("seconds"), "skipped": v.get("skipped"),
             "executed": not v.get("skipped")} for v in json.loads(report.read_text())["variants"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", action="append", help="BasicSR-layout evaluation set [default: 2 Set5 images]")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    timer = shutil.which("time") or "/usr/bin/time"
    if not Path(timer).is_file():
        sys.exit("error: /usr/bin/time is missing (apt-get install -y time)")
    with tempfile.TemporaryDirectory(prefix="calib_mem_") as tmp:
        tmp = Path(tmp)
        evals = args.eval or [str(small_set5(tmp))]
        agileir = Path(sys.executable).with_name("agileir")
        cmd = [str(agileir), "calibrate", *[a for d in evals for a in ("--eval", d)], "-o", str(tmp / "report")]
        shown = ["agileir", "calibrate", *[a for d in (args.eval or ["<2 Set5 images: butterfly, bird>"])
                                          for a in ("--eval", d)], "-o", "OUT"]
        record = {"bench": "calibration_memory", "command": " ".join(shown), "timer": f"{timer} -v",
                  "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": os.cpu_count(),
                  "mem_total_bytes": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                  "loadavg_start": [round(x, 2) for x in os.getloadavg()], "limit_bytes": LIMIT, "finished": False}
        log = tmp / "run.log"
        t0, written, sampled, load_max = time.monotonic(), 0.0, 0, 0.0
        with open(log, "w") as out:
            proc = subprocess.Popen([timer, "-v", *cmd], stdout=out, stderr=subprocess.STDOUT)
            while proc.poll() is None:
                sampled, load_max = max(sampled, tree_rss(proc.pid)), max(load_max, os.getloadavg()[0])
                if time.monotonic() - written >= 30:  # rewrite the partial record every ~30 s
                    written = time.monotonic()
                    _write(args.out, record | {"elapsed_s": round(written - t0), "sampled_peak_rss_bytes": sampled,
                                               "last_stage": stage_lines(log.read_text(errors="replace"), True)[-1:]})
                time.sleep(2)
        text = log.read_text(errors="replace")
        record |= time_v(text) | {"finished": True, "sampled_peak_rss_bytes": sampled, "loadavg_max": round(load_max, 2),
                                  "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                                  "ended": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                  "rows": rows(tmp / "report" / "calibration_report.json"),
                                  "peer_lines": [ln for ln in stage_lines(text) if any(p in ln for p in PEERS)]}
        record["within_limit"] = bool(record["peak_rss_bytes"] and record["peak_rss_bytes"] <= LIMIT)
        record["passed"] = record["within_limit"] and record["exit_status"] == 0 and bool(record["rows"])
        if record["exit_status"] != 0:
            record["log_tail"] = text.splitlines()[-25:]
        _write(args.out, record)
    print(json.dumps({k: record[k] for k in ("peak_rss_bytes", "wall_s", "exit_status", "passed")}))
    return 0 if record["passed"] else 1


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
