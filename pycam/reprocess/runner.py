"""Run planned station-days on Dask distributed and merge each station's days.

* ``LocalCluster`` of ``workers`` single-threaded worker processes by default, or an existing
  scheduler (``tcp://HOST:8786``) whose workers have the same ``pycam`` installed.  Dask's
  links carry pickled tasks: run the cluster on a trusted network (or loopback), never on the
  station LAN.
* Days whose output already records the same manifest hash are skipped without starting a
  cluster; a failing day is reported and the others go on.
* Ctrl-C cancels the days not finished, closes the cluster and leaves every finished day
  complete (the next run resumes).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Sequence

from pycam.reprocess.day import is_done, process_day, read_done, station_stem
from pycam.reprocess.plan import DayTask

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunReport:
    done: list[dict] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: list[dict] = dataclasses.field(default_factory=list)
    merged: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    @property
    def pairs(self) -> int:
        return sum(int(d.get("pairs", 0)) for d in self.done)


def run_days(tasks: Sequence[DayTask], *, workers: int = 2, scheduler: str | None = None, cubes: bool = False,
             on_day: Callable[[dict], None] | None = None, flow_threads: int = 1) -> RunReport:
    """Process the tasks that are not done yet (see the module docstring)."""
    report = RunReport()
    todo = []
    for t in tasks:
        if is_done(t):
            report.skipped.append(t.key)
        else:
            todo.append(t)
    if not todo:
        return report
    for t in todo:
        clean_stale(t)
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="20s")
    futures = []
    try:
        futures = [client.submit(process_day, t, cubes=cubes, flow_threads=flow_threads, pure=False,
                                 key=f"pycam-day-{t.key}-{t.manifest_hash[:12]}") for t in todo]
        by_key = {f.key: t for f, t in zip(futures, todo)}
        for fut in as_completed(futures):
            task = by_key[fut.key]
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died or the task could not run
                result = {"key": task.key, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "pairs": 0, "problems": []}
            (report.done if result.get("status") == "ok" else report.failed).append(result)
            if on_day is not None:
                on_day(result)
    except KeyboardInterrupt:
        report.interrupted = True
        client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return report


def clean_stale(task: DayTask) -> list[Path]:
    """Remove what an interrupted run left of this day (hidden ``.<date>.part-*``/``.old-*`` folders)."""
    import shutil

    out_dir = Path(task.out_dir)
    removed = []
    if out_dir.parent.is_dir():
        for p in out_dir.parent.glob(f".{out_dir.name}.*"):
            if ".part-" in p.name or ".old-" in p.name:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def merge_stations(tasks: Sequence[DayTask], out: Path) -> list[str]:
    """Write ``OUT/<station>/<station>_so2.nc`` from the finished days, only when they changed."""
    from pycam.formats.atomic import atomic_write_text
    from pycam.products.timeseries import merge_files

    written = []
    stations: dict[str, list[DayTask]] = {}
    for t in tasks:
        stations.setdefault(t.station, []).append(t)
    for station, days in sorted(stations.items()):
        files, hashes = [], []
        for t in sorted(days, key=lambda d: d.date):
            done = read_done(Path(t.out_dir))
            if not done or done.get("status") != "ok" or done.get("manifest_sha256") != t.manifest_hash:
                continue
            files.append(Path(t.out_dir) / done["netcdf"])
            hashes.append(f"{t.date}:{t.manifest_hash}")
        if not files:
            continue
        digest = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
        station_dir = out / station
        target = station_dir / f"{station_stem(station)}_so2.nc"
        stamp = station_dir / "merged.json"
        try:
            if json.loads(stamp.read_text()).get("sha256") == digest and target.exists():
                continue
        except (OSError, ValueError):
            pass
        merge_files(files, target, manifest_hash=digest)
        atomic_write_text(stamp, json.dumps({"sha256": digest, "days": hashes}, indent=2) + "\n")
        written.append(str(target))
    return written
