"""Process one station-day (runs on a Dask worker; plain data in, plain data out).

The day is built in a hidden folder beside its final place (``.<date>.part-<random>``) and
renamed into place when everything is written, ``done.json`` last: a day folder without a
matching ``done.json`` is half-done or stale and is redone by the next run.  Output::

    OUT/<station>/<date>/Seq_N/...             what ``pycam process`` writes for Seq_N
    OUT/<station>/<date>/<station>_<date>_so2.nc   CF netCDF time series of the day
    OUT/<station>/<date>/so2_images.zarr       (with cubes on) calibrated SO2 images
    OUT/<station>/<date>/done.json             manifest hash, counts, problems, mean rates
"""
from __future__ import annotations

import json
import secrets
import shutil
import statistics
import time
import traceback
from pathlib import Path

import numpy as np

from pycam.reprocess.plan import DayTask

DONE_NAME = "done.json"


def station_stem(station: str) -> str:
    """A station's name as a file-name part (nested station folders joined with ``_``)."""
    return station.replace("/", "_")


def day_file_stem(station: str, date: str) -> str:
    return f"{station_stem(station)}_{date}"


def read_done(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / DONE_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_done(task: DayTask) -> bool:
    done = read_done(Path(task.out_dir))
    return bool(done) and done.get("manifest_sha256") == task.manifest_hash and done.get("status") == "ok"


def _station_info(task: DayTask):
    from pycam.formats.geometry import read_camera_geometry
    from pycam.products.timeseries import StationInfo

    info = StationInfo(task.station)
    if task.geometry:
        g = read_camera_geometry(task.geometry)
        info = StationInfo(task.station, g.lat, g.lon, g.altitude, g.elev, g.azim, g.volcano)
    return info


def _frames_per_hour(seq: Path, tolerance: float) -> int:
    from pycam.processing.archive import find_plume_pairs

    times = [p.time for p in find_plume_pairs(seq, tolerance).pairs]
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:]) if b > a]
    step = statistics.median(steps) if steps else 1.0
    return max(1, int(round(3600.0 / max(step, 1e-3))))


def process_day(task: DayTask, *, cubes: bool = False, flow_threads: int = 1) -> dict:
    """Process ``task``; never raises (a failure comes back as ``status: failed`` with the reason)."""
    out_dir = Path(task.out_dir)
    work = out_dir.parent / f".{out_dir.name}.part-{secrets.token_hex(4)}"
    started = time.perf_counter()
    try:
        result = _process(task, work, cubes, flow_threads, started)
        _swap_into_place(work, out_dir)
        return result
    except BaseException as exc:  # noqa: BLE001 - reported to the planner, the other days go on
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"key": task.key, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6), "pairs": 0, "problems": []}


def _swap_into_place(work: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (an older or half-done result of this day) by ``work``."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
        out_dir.rename(old)
    work.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:              # not on Linux
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _process(task: DayTask, work: Path, cubes: bool, flow_threads: int, started: float) -> dict:
    from pycam.formats.atomic import atomic_write_text
    from pycam.processing.batch import BatchError, BatchJob, run_batch
    from pycam.processing.outputs import RunOutputs, emission_row
    from pycam.processing.settings import load_settings
    from pycam.products.timeseries import RateSample, build_dataset, write_netcdf

    work.mkdir(parents=True)
    settings = load_settings(task.config)
    if cubes:
        settings = settings.replace(save_images=True)
    mode = settings["primary_mode"]
    samples: list[RateSample] = []
    problems: list[str] = []
    cube_holder: list = []
    pairs = 0
    station = _station_info(task)

    class Collecting(RunOutputs):
        """Writes what ``pycam process`` writes; keeps the primary mode's rows for the netCDF and
        sends calibrated SO2 images to the cube instead of single files."""

        def write_rate(self, time, line, rate_mode, rate):
            super().write_rate(time, line, rate_mode, rate)
            if rate_mode == mode:
                row = emission_row(time, rate)
                samples.append(RateSample(time, str(line), row.flux, row.flux_err, row.velo_eff, row.velo_eff_err,
                                          row.ica_mass, int(getattr(row, "flag", 0) or 0)))

        def save_image(self, time, kind, image):
            if not cubes:
                return super().save_image(time, kind, image)
            if kind != "cal":
                return None
            if not cube_holder:
                from pycam.products.cube import So2CubeWriter

                cube_holder.append(So2CubeWriter(work / "so2_images.zarr", image.shape, fph,
                                                 {"station": task.station, "date": task.date,
                                                  "Conventions": "CF-1.8"}))
            cube_holder[0].add(time, image)
            return None

    try:
        for seq in task.sequences:
            fph = _frames_per_hour(Path(seq), settings["pair_tolerance_s"]) if cubes else 1
            job = BatchJob(Path(seq), work / Path(seq).name, settings,
                           cal_dir=Path(task.cal_dir) if task.cal_dir else None,
                           dark_dir=Path(task.dark_dir) if task.dark_dir else None,
                           clear_dir=Path(task.clear_dir) if task.clear_dir else None,
                           geometry=Path(task.geometry) if task.geometry else None,
                           pcs=[Path(p) for p in task.pcs], workers=flow_threads)
            try:
                result = run_batch(job, outputs_factory=Collecting)
            except BatchError as exc:
                if exc.exit_code == 1:           # an empty sequence: reported, the day goes on
                    problems.append(f"{Path(seq).name}: {exc}")
                    continue
                raise
            problems += [f"{Path(seq).name}: {p}" for p in result.problems]
            if result.summary is not None:
                pairs += result.summary.pairs_processed
    finally:
        if cube_holder:
            cube_holder[0].close()
    settings_text = settings.to_yaml()
    stem = day_file_stem(task.station, task.date)
    ds = build_dataset(samples, station, settings_text=settings_text, manifest_hash=task.manifest_hash,
                       velocity_mode=mode, title_suffix=f", {task.date}",
                       ica_rel_err=float(np.hypot(settings["cd_err_rel"], settings["dist_err_rel"])))
    write_netcdf(ds, work / f"{stem}_so2.nc")
    means = {}
    for j, name in enumerate(ds["line_name"].values):
        v = ds["so2_emission_rate"].isel(line=j).values
        good = v[(ds["quality_flag"].isel(line=j).values == 0)]
        means[str(name)] = float(good.mean()) if good.size else None
    result = {"key": task.key, "station": task.station, "date": task.date, "status": "ok",
              "manifest_sha256": task.manifest_hash, "pairs": pairs, "samples": len(samples),
              "velocity_mode": mode, "mean_rate_kg_s": means, "problems": problems,
              "netcdf": f"{stem}_so2.nc", "cube": "so2_images.zarr" if cube_holder else None,
              "worker_peak_rss_mb": _peak_rss_mb(), "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_text(work / DONE_NAME, json.dumps(result, indent=2) + "\n")
    return result
