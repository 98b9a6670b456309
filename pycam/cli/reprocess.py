"""``pycam reprocess ARCHIVE --out OUT``: a whole archive, one task per station-day, on Dask."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Reprocess a PyCam archive (<date>/Seq_N, Cal_N, Dark, Clear; several stations as sub-folders; the "
        "nearest process_config.yml, pcs_line_*.txt and cam_geom.txt up the tree apply) on Dask distributed. "
        "Each station-day's output records a hash of its inputs and settings: a rerun skips finished days and "
        "redoes changed or half-done ones; a failing day is reported and the others go on.")
    parser.add_argument("archive", metavar="ARCHIVE", type=Path, help="the archive's top folder")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder: OUT/<station>/<date>/ (PyCam CSVs per Seq_N, a CF netCDF of the day, "
                             "done.json) and OUT/<station>/<station>_so2.nc (all days)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="worker processes of the local Dask cluster (default 2)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use a running Dask scheduler (tcp://HOST:8786) instead of a local cluster; its "
                             "workers need the same pycam installed and read the archive at the same path")
    parser.add_argument("--zarr", action="store_true",
                        help="also write the calibrated SO2 images of each day as a zarr cube "
                             "(OUT/<station>/<date>/so2_images.zarr; time, y, x; chunked by hour)")
    parser.add_argument("--dry-run", action="store_true", help="list the station-days and what would be done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pycam.reprocess.day import is_done
    from pycam.reprocess.plan import PlanError, plan_archive
    from pycam.reprocess.runner import merge_stations, run_days

    if args.workers < 1:
        print("pycam reprocess: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        tasks = plan_archive(args.archive, args.out, options=f"zarr={bool(args.zarr)}")
    except (PlanError, OSError) as exc:
        print(f"pycam reprocess: {exc}", file=sys.stderr)
        return 2
    if not tasks:
        print(f"pycam reprocess: no station-day with a Seq_N folder under {args.archive}", file=sys.stderr)
        return 1
    todo = [t for t in tasks if not is_done(t)]
    stations = sorted({t.station for t in tasks})
    print(f"{len(tasks)} station-day(s) in {len(stations)} station(s); {len(tasks) - len(todo)} already done, "
          f"{len(todo)} to process (~{sum(t.plume_frames for t in todo)} pairs)")
    if args.dry_run:
        for t in tasks:
            print(f"  {t.key}: {'done' if t not in todo else 'to do'}; {len(t.sequences)} sequence(s), "
                  f"~{t.plume_frames} pairs, cal {t.cal_dir or '-'}, config {t.config or 'defaults'}")
        return 0
    bar = None
    if todo and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="day", file=sys.stderr)
    pairs = [0]

    def on_day(result: dict) -> None:
        pairs[0] += int(result.get("pairs", 0))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(pairs=pairs[0])
        if result.get("status") != "ok":
            msg = f"pycam reprocess: {result['key']} FAILED: {result.get('error')}"
            (bar.write(msg, file=sys.stderr) if bar is not None else print(msg, file=sys.stderr))

    try:
        report = run_days(tasks, workers=args.workers, scheduler=args.scheduler, cubes=args.zarr, on_day=on_day)
    except OSError as exc:
        print(f"pycam reprocess: cannot reach the Dask scheduler: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    merged = merge_stations(tasks, args.out)
    for d in report.done:
        rates = ", ".join(f"line {k} {v:.3f}" for k, v in (d.get("mean_rate_kg_s") or {}).items() if v is not None)
        print(f"  {d['key']}: {d['pairs']} pairs, mean rate ({d['velocity_mode']}) {rates or '-'} kg/s"
              + (f", {len(d['problems'])} problem(s): {d['problems'][0]}" if d.get("problems") else ""))
    for d in report.failed:
        print(f"  {d['key']}: FAILED {d.get('error')}", file=sys.stderr)
    for m in merged:
        print(f"  merged {m}")
    print(f"{len(report.done)} day(s) processed ({report.pairs} pairs), {len(report.skipped)} skipped (done), "
          f"{len(report.failed)} failed" + ("; INTERRUPTED (rerun to resume)" if report.interrupted else ""))
    if report.interrupted:
        return 130
    return 1 if report.failed else 0
