"""Benchmark: ``pycam reprocess`` on Dask (1 and 2 workers) against plain ``pycam process``.

Run:  .venv/bin/python benchmarks/reprocess.py [--pairs 600] [--days 3]

Data: a simulated archive of ``--days`` station-days with ``--pairs`` pairs each (``pycam
simulate`` data, 648x486, one Seq_1 a day), kept in ``benchmarks/results/reprocess_archive_*``
so that a second run does not simulate again.  Measured in one run, over the same folders:

* ``process``: ``pycam process`` once per day, one after the other (its default 2 flow
  threads), and ``process_1thread`` with ``--workers 1``: the single-process baselines;
* ``reprocess_1`` and ``reprocess_2``: ``pycam reprocess --workers 1|2`` into fresh output
  folders (wall time includes starting the local Dask cluster);
* pairs/s of each, the speed-up of 2 workers over 1 (goal >= 1.8x; with one task per whole
  station-day, 3 days on 2 workers allow 1.5x at best, also reported), the scaling efficiency
  (speed-up / 2), the per-core throughput of ``reprocess_1`` against ``process_1thread`` (goal
  within 10 %), also counted inside the day tasks only (without the cluster start), the peak RSS of each worker process (from the days' ``done.json``), and the
  projected wall time of one station-year (10,800 pairs a day x 365) on 16 cores at the
  measured per-worker throughput and efficiency.

On a 2-core machine the 2-worker run competes with everything else running: the load average
is recorded.  Writes ``benchmarks/results/reprocess.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYCAM = str(Path(sys.executable).parent / "pycam")
RESULTS = ROOT / "benchmarks" / "results"
PAIRS_PER_STATION_YEAR = 10_800 * 365


def make_archive(pairs: int, days: int) -> Path:
    from pycam.sim.dataset import DatasetOptions, write_dataset

    root = RESULTS / f"reprocess_archive_{days}x{pairs}"
    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(days):
        day = (dt.date(2026, 3, 15) + dt.timedelta(days=i)).isoformat()
        start = dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")
        print(f"simulating {day}: {pairs} pairs", file=sys.stderr)
        write_dataset(root / "BENCH" / day, DatasetOptions(pairs=pairs, seed=21 + i, start=start, scene="clean",
                                                           line_columns=False))
    stamp.write_text("ok\n")
    return root


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([PYCAM, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"pycam {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return seconds


def time_process(archive: Path, out: Path, threads: int | None) -> float:
    total = 0.0
    for day in sorted((archive / "BENCH").iterdir()):
        extra = ["--workers", str(threads)] if threads else []
        total += _run(["process", str(day / "Seq_1"), "--out", str(out / day.name), "--cal-dir", str(day / "Cal_1"),
                       "--dark-dir", str(day / "Dark"), "--clear-dir", str(day / "Clear"), "--pcs",
                       str(day / "pcs_line_0.txt"), str(day / "pcs_line_1.txt"), "--config",
                       str(day / "process_config.yml"), "--geometry", str(day / "cam_geom.txt"), "--no-progress",
                       *extra])
    return total


def peak_rss_mb(out: Path) -> list[float]:
    return [json.loads(p.read_text()).get("worker_peak_rss_mb") for p in sorted(out.rglob("done.json"))]


def task_seconds(out: Path) -> float:
    """Seconds the workers spent inside the day tasks (no cluster start, no imports)."""
    return sum(float(json.loads(p.read_text()).get("seconds") or 0) for p in sorted(out.rglob("done.json")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=600, help="pairs per station-day (default 600)")
    ap.add_argument("--days", type=int, default=3, help="station-days (default 3)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    archive = make_archive(args.pairs, args.days)
    total_pairs = args.pairs * args.days
    scratch = RESULTS / "reprocess_out"
    shutil.rmtree(scratch, ignore_errors=True)
    load_before = os.getloadavg()
    t_process = time_process(archive, scratch / "process", None)
    t_process_1 = time_process(archive, scratch / "process_1", 1)
    t_re_1 = _run(["reprocess", str(archive), "--out", str(scratch / "re1"), "--workers", "1", "--no-progress"])
    t_re_2 = _run(["reprocess", str(archive), "--out", str(scratch / "re2"), "--workers", "2", "--no-progress"])
    t_rerun = _run(["reprocess", str(archive), "--out", str(scratch / "re2"), "--workers", "2", "--no-progress"])
    busy_1 = task_seconds(scratch / "re1")
    speedup = t_re_1 / t_re_2
    ideal = args.days / -(-args.days // 2)        # whole days on 2 workers: 3 days -> 1.5x at best
    per_worker = total_pairs / t_re_1
    efficiency = speedup / 2
    projected_h = PAIRS_PER_STATION_YEAR / (per_worker * 16 * min(1.0, efficiency)) / 3600
    result = {
        "pairs_per_day": args.pairs, "days": args.days, "pairs": total_pairs,
        "seconds": {"process": t_process, "process_1thread": t_process_1, "reprocess_1": t_re_1,
                    "reprocess_2": t_re_2, "rerun_nothing_to_do": t_rerun},
        "pairs_per_s": {"process": total_pairs / t_process, "process_1thread": total_pairs / t_process_1,
                        "reprocess_1": per_worker, "reprocess_2": total_pairs / t_re_2},
        "speedup_2_over_1": speedup, "scaling_efficiency": efficiency,
        "per_core_vs_process_1thread": per_worker / (total_pairs / t_process_1),
        "per_core_vs_process_default": per_worker / (total_pairs / t_process),
        "per_core_in_tasks_pairs_per_s": total_pairs / busy_1 if busy_1 else None,
        "per_core_in_tasks_vs_process_1thread": (total_pairs / busy_1) / (total_pairs / t_process_1) if busy_1 else None,
        "ideal_speedup_whole_days_on_2_workers": ideal,
        "speedup_vs_ideal": speedup / ideal,
        "peak_rss_mb_per_worker": {"reprocess_1": peak_rss_mb(scratch / "re1"),
                                   "reprocess_2": peak_rss_mb(scratch / "re2")},
        "projected_station_year_hours_16_cores": projected_h,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "cpus": os.cpu_count(),
    }
    (RESULTS / "reprocess.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"reprocess: {total_pairs} pairs; process {result['pairs_per_s']['process']:.1f} pairs/s "
          f"(1 thread {result['pairs_per_s']['process_1thread']:.1f}); reprocess 1 worker {per_worker:.1f}, "
          f"2 workers {result['pairs_per_s']['reprocess_2']:.1f} pairs/s: speed-up {speedup:.2f}x, efficiency "
          f"{efficiency:.0%} (whole days on 2 workers allow {ideal:.2f}x), per-core vs process --workers 1 "
          f"{result['per_core_vs_process_1thread']:.0%} ({result['per_core_in_tasks_vs_process_1thread'] or 0:.0%} "
          f"inside the day tasks, without the cluster start); "
          f"rerun {t_rerun:.1f} s; peak RSS/worker {max(filter(None, result['peak_rss_mb_per_worker']['reprocess_2']), default=0):.0f} MB; "
          f"station-year on 16 cores ~{projected_h:.1f} h")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
