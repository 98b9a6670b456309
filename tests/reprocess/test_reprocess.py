"""``pycam reprocess`` on a simulated archive of 2 stations x 3 days (issue 12 acceptance).

The days are the simulator's clean scene: these tests are about reprocessing (planning, resuming,
products); the accuracy of the chain on realistic scenes is tested in tests/sim and tests/realdata.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.processes import sigint_default

xr = pytest.importorskip("xarray")
pytest.importorskip("distributed")

from pycam.reprocess.plan import plan_archive  # noqa: E402
from pycam.sim.dataset import DatasetOptions, write_dataset  # noqa: E402

PYCAM = str(Path(sys.executable).parent / "pycam")
DASK = str(Path(sys.executable).parent / "dask")
DAYS = ("2026-03-15", "2026-03-16", "2026-03-17")
#: (station, day index) -> emission rate kg/s; every day has its own truth
RATES = {("ST_A", 0): 4.0, ("ST_A", 1): 6.0, ("ST_A", 2): 5.0, ("ST_B", 0): 8.0, ("ST_B", 1): 3.0, ("ST_B", 2): 7.0}
PAIRS = 10

pytestmark = pytest.mark.slow


def _pycam(*args, timeout=600):
    return subprocess.run([PYCAM, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """ST_A keeps its settings, lines and geometry in each day folder (as `pycam simulate`
    writes them); ST_B keeps one set at the station level (nearest up the tree applies)."""
    root = tmp_path_factory.mktemp("archive")
    for (station, i), rate in RATES.items():
        day = DAYS[i]
        d = root / station / day
        start = dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")
        seed = 11 + i + (7 if station == "ST_B" else 0)
        write_dataset(d, DatasetOptions(pairs=PAIRS, emission_rate_kg_s=rate, scene="clean", seed=seed, start=start))
        if station == "ST_B":
            for name in ("process_config.yml", "pcs_line_0.txt", "pcs_line_1.txt", "cam_geom.txt"):
                src = d / name
                if i == 0:
                    shutil.copy2(src, root / station / name)
                src.unlink()
    return root


def _snapshot(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    t0 = time.perf_counter()
    r = _pycam("reprocess", archive, "--out", out, "--workers", "2", "--no-progress")
    return out, r, time.perf_counter() - t0


def _truth(archive: Path, station: str, day: str) -> dict:
    return json.loads((archive / station / day / "truth.json").read_text())


def test_plan_finds_station_days_and_nearest_files(archive, tmp_path):
    tasks = plan_archive(archive, tmp_path)
    assert sorted(t.key for t in tasks) == sorted(f"{s}/{DAYS[i]}" for s, i in RATES)
    b = next(t for t in tasks if t.key == f"ST_B/{DAYS[1]}")
    assert Path(b.config) == archive / "ST_B" / "process_config.yml"
    assert [Path(p).name for p in b.pcs] == ["pcs_line_0.txt", "pcs_line_1.txt"]
    assert Path(b.cal_dir) == archive / "ST_B" / DAYS[1] / "Cal_1"
    assert b.plume_frames == PAIRS
    a = next(t for t in tasks if t.key == f"ST_A/{DAYS[0]}")
    assert Path(a.config).parent == archive / "ST_A" / DAYS[0]


def test_first_run_matches_each_days_truth(archive, first_run):
    out, r, _ = first_run
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 day(s) processed" in r.stdout
    for (station, i), rate in RATES.items():
        day = DAYS[i]
        nc = out / station / day / f"{station}_{day}_so2.nc"
        with xr.open_dataset(nc) as ds:
            assert ds.attrs["input_manifest_sha256"] == json.loads((out / station / day / "done.json").read_text())[
                "manifest_sha256"]
            assert "flow_hybrid" == ds.attrs["velocity_mode"] and "plume_distance_m" in ds.attrs["processing_settings"]
            truth = _truth(archive, station, day)
            for j, name in enumerate(ds["line_name"].values):
                v = ds["so2_emission_rate"].isel(line=j).values
                good = ds["quality_flag"].isel(line=j).values == 0
                assert good.sum() >= PAIRS - 2
                mean = float(v[good].mean())
                expect = truth["mean_flux_kg_s"][str(name)]
                assert abs(mean / expect - 1) < 0.05, (station, day, name, mean, expect)
                assert abs(expect / rate - 1) < 0.01
            assert np.isfinite(float(ds["latitude"])) and ds["latitude"].attrs["units"] == "degrees_north"
    for station in ("ST_A", "ST_B"):
        with xr.open_dataset(out / station / f"{station}_so2.nc") as m:
            assert m.sizes["time"] == 3 * PAIRS
            days = {str(t)[:10] for t in m["time"].values}
            assert days == set(DAYS)


def test_rerun_is_fast_and_rewrites_nothing(archive, first_run):
    out, r, first_seconds = first_run
    assert r.returncode == 0
    before = _snapshot(out)
    t0 = time.perf_counter()
    r2 = _pycam("reprocess", archive, "--out", out, "--workers", "2", "--no-progress")
    seconds = time.perf_counter() - t0
    assert r2.returncode == 0, r2.stderr
    assert "0 day(s) processed" in r2.stdout and "6 skipped" in r2.stdout
    assert _snapshot(out) == before
    assert seconds < 0.1 * first_seconds, (seconds, first_seconds)


def test_deleted_day_is_redone_alone(archive, first_run):
    out, r, _ = first_run
    victim = out / "ST_B" / DAYS[2]
    shutil.rmtree(victim)
    before = _snapshot(out)
    r2 = _pycam("reprocess", archive, "--out", out, "--workers", "1", "--no-progress")
    assert r2.returncode == 0, r2.stderr
    assert "1 day(s) processed" in r2.stdout and "5 skipped" in r2.stdout
    after = _snapshot(out)
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed and all(k.startswith(f"ST_B/{DAYS[2]}/") or k.startswith("ST_B/ST_B_so2.nc")
                           or k == "ST_B/merged.json" for k in changed), sorted(changed)[:10]
    assert not [k for k in before if k not in after]


def test_half_done_day_is_redone(archive, first_run):
    out, _, _ = first_run
    done = out / "ST_A" / DAYS[1] / "done.json"
    done.unlink()                                    # as if the worker died before the last write
    r2 = _pycam("reprocess", archive, "--out", out, "--workers", "1", "--no-progress")
    assert r2.returncode == 0 and "1 day(s) processed" in r2.stdout, r2.stdout + r2.stderr
    assert done.is_file()
    assert not [p for p in (out / "ST_A").iterdir() if p.name.startswith(".")]


def test_corrupt_file_and_failing_day_are_reported_others_complete(tmp_path):
    root = tmp_path / "archive"
    for i, day in enumerate(DAYS):
        start = dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")
        write_dataset(root / "ST" / day, DatasetOptions(pairs=6, seed=3 + i, start=start, scene="clean"))
    bad_png = sorted((root / "ST" / DAYS[0] / "Seq_1").glob("*fltrA*Plume.png"))[2]
    bad_png.write_bytes(bad_png.read_bytes()[:200])           # truncated image: reported, pair skipped
    (root / "ST" / DAYS[1] / "process_config.yml").write_text("plume_distance_m: [not a number\n")
    out = tmp_path / "out"
    r = _pycam("reprocess", root, "--out", out, "--workers", "2", "--no-progress")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"ST/{DAYS[1]}" in r.stderr and "FAILED" in r.stderr and "process_config" in r.stderr
    assert "2 day(s) processed" in r.stdout and "1 failed" in r.stdout
    d0 = json.loads((out / "ST" / DAYS[0] / "done.json").read_text())
    assert any(bad_png.name in p for p in d0["problems"]), d0["problems"]
    assert (out / "ST" / DAYS[2] / "done.json").is_file()
    assert not (out / "ST" / DAYS[1]).exists()
    assert not [p for p in (out / "ST").iterdir() if p.name.startswith(".")]


def test_netcdf_passes_the_cf_check(first_run):
    pytest.importorskip("compliance_checker")
    out, r, _ = first_run
    assert r.returncode == 0
    for nc in (out / "ST_A" / "ST_A_so2.nc", out / "ST_A" / DAYS[0] / f"ST_A_{DAYS[0]}_so2.nc"):
        cc = subprocess.run([str(Path(sys.executable).parent / "compliance-checker"), "--test", "cf:1.8",
                             "--format", "json", "-o", "-", str(nc)], capture_output=True, text=True, timeout=300)
        report = json.loads(cc.stdout)["cf:1.8"]
        failed = [c for c in report["all_priorities"] if c["value"][0] < c["value"][1]]
        assert not failed, [(c["name"], c["msgs"]) for c in failed]
        assert report["scored_points"] == report["possible_points"]
        with xr.open_dataset(nc) as ds:
            assert ds["so2_emission_rate"].attrs["units"] == "kg s-1"
            assert "quality_flag" in ds["so2_emission_rate"].attrs["ancillary_variables"]
            for name in ("so2_emission_rate", "plume_speed", "ica_mass"):
                assert f"{name}_uncertainty" in ds[name].attrs["ancillary_variables"].split()
                assert ds[f"{name}_uncertainty"].attrs["units"] == ds[name].attrs["units"]
            assert ds["quality_flag"].attrs["flag_meanings"].split()[-1] == "no_value"
            assert ds.attrs["Conventions"].startswith("CF-1.")


def test_external_scheduler_gives_identical_files(archive, first_run, tmp_path):
    out1, r, _ = first_run
    assert r.returncode == 0
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([DASK, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                           "--no-dashboard", "--local-directory", str(tmp_path / "w")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        out2 = tmp_path / "out2"
        r2 = _pycam("reprocess", archive, "--out", out2, "--scheduler", address, "--no-progress")
        assert r2.returncode == 0, r2.stdout + r2.stderr
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    for (station, i) in RATES:
        day = DAYS[i]
        a = out1 / station / day
        b = out2 / station / day
        with xr.open_dataset(a / f"{station}_{day}_so2.nc") as da, xr.open_dataset(b / f"{station}_{day}_so2.nc") as db:
            assert da.identical(db)
        for csv in sorted((a / "Seq_1").rglob("*.txt")):
            assert csv.read_bytes() == (b / csv.relative_to(a)).read_bytes(), csv


def test_zarr_cube_opens_lazily_and_report_renders(tmp_path):
    root = tmp_path / "archive"
    day = DAYS[0]
    write_dataset(root / day, DatasetOptions(pairs=6, seed=5, scene="clean",
                                             start=dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")))
    out = tmp_path / "out"
    r = _pycam("reprocess", root, "--out", out, "--workers", "1", "--zarr", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    station = "archive"
    store = out / station / day / "so2_images.zarr"
    cube = xr.open_zarr(store)
    so2 = cube["so2"]
    assert so2.dims == ("time", "y", "x") and so2.shape == (6, 486, 648)
    assert hasattr(so2.data, "dask")                          # lazy
    assert so2.encoding["chunks"][0] == 900                   # one hour of pairs 4 s apart
    first = so2.isel(time=1).values
    truth = json.loads((root / day / "truth.json").read_text())
    fov = truth["spectrometer_fov"]
    centre = first[int(fov["y"]) - 3:int(fov["y"]) + 4, int(fov["x"]) - 3:int(fov["x"]) + 4]
    assert np.isfinite(centre).all()
    assert abs(centre.mean() / truth["pairs"][1]["fov_column_molec_cm2"] - 1) < 0.25
    assert not [p for p in (out / station / day).iterdir() if p.name.startswith(".so2cube")]
    rep = _pycam("report", out)
    assert rep.returncode == 0, rep.stderr
    png = out / station / day / f"{station}_{day}_so2_report.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(tmp_path):
    import signal

    root = tmp_path / "archive"
    for i, day in enumerate(DAYS):
        write_dataset(root / "ST" / day, DatasetOptions(pairs=8, seed=30 + i, scene="clean",
                                                        start=dt.datetime.fromisoformat(f"{day}T12:00:00+00:00")))
    out = tmp_path / "out"
    proc = subprocess.Popen([PYCAM, "reprocess", str(root), "--out", str(out), "--workers", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("ST/*/done.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "INTERRUPTED" in stdout
    finished = {p.parent.name for p in out.glob("ST/*/done.json")}
    assert 1 <= len(finished) < 3
    r = _pycam("reprocess", root, "--out", out, "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{3 - len(finished)} day(s) processed" in r.stdout and f"{len(finished)} skipped" in r.stdout
    assert not [p for p in (out / "ST").iterdir() if p.name.startswith(".")]
