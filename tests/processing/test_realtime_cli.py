"""The real-time contract, the CLI (batch, --watch, interruption), bounded memory, and real plume pairs."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from helpers.processes import sigint_default
from processing_synthetic import SLOPE, Scene

from pycam.formats.geometry import PCSLine
from pycam.formats.pycam_outputs import read_emission_rates
from pycam.processing.chain import ProcessingChain
from pycam.processing.doas_calibration import DoasCalibration
from pycam.processing.outputs import RunOutputs
from pycam.formats.image_pair import ImagePair
from pycam.processing.pipeline import BatchProcessor
from pycam.processing.realtime import PairResult, RealtimeProcessor
from pycam.processing.settings import default_settings

pytestmark = pytest.mark.slow

T0 = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
PYCAM = str(Path(sys.executable).parent / "pycam")


def _linear_calibration():
    cal = DoasCalibration(order=1)
    aa = np.linspace(0, 0.5, 20)
    cal.add_samples([T0 + dt.timedelta(seconds=i) for i in range(20)], aa, aa * SLOPE, np.full(20, 1e16))
    cal.fit()
    return cal


def test_realtime_runs_without_darks_or_calibration_and_warns_once(caplog):
    sc = Scene()
    proc = RealtimeProcessor(None, pcs_lines=[PCSLine(400, 100, 400, 400, "right", "0")])
    with caplog.at_level(logging.WARNING):
        results = [proc.process_pair(*sc.frames(i), {"time": T0 + dt.timedelta(seconds=4 * i),
                                                      "exposure_a_us": 1000, "exposure_b_us": 1000})
                   for i in range(3)]
    assert all(isinstance(r, PairResult) and np.isfinite(r.aa).all() and r.so2 is None for r in results)
    assert results[0].tau_a is not None and results[0].tau_b is not None
    assert results[0].emission_rates == {} and results[0].total is None
    assert any("NO CALIBRATION" in w for w in results[0].warnings) and not results[1].warnings
    assert sum("NO DARK FRAMES" in r.message for r in caplog.records) == 1


def test_realtime_emission_rates_and_runtime_lines():
    sc = Scene(speed_px=6.0)
    ca, cb = sc.clear()
    lines = [PCSLine(400, 100, 400, 400, "right", "east"), PCSLine(250, 100, 250, 400, "right", "west")]
    proc = RealtimeProcessor({"plume_distance_m": 5000, "min_cd": 1e16}, darks={"on": sc.dark(), "off": sc.dark()},
                             clear=ImagePair(T0, ca, cb), calibration=_linear_calibration(), pcs_lines=lines)
    footprint = 5000 * 5.6e-6 / proc.settings.focal_length
    first = proc.process_pair(*sc.frames(0), {"time": T0, "exposure_a_us": 1, "exposure_b_us": 1})
    assert first.flow is None and np.isnan(first.emission_rates["east"].flux_kg_s)
    res = proc.process_pair(*sc.frames(1), {"time": T0 + dt.timedelta(seconds=4), "exposure_a_us": 1,
                                            "exposure_b_us": 1})
    assert res.flow is not None and set(res.emission_rates) == {"east", "west", "total"}
    true = sc.true_flux(1, 400, footprint, 4.0)
    assert res.emission_rates["east"].flux_kg_s == pytest.approx(true, rel=0.2)
    assert res.total.flux_kg_s == pytest.approx(res.emission_rates["east"].flux_kg_s
                                                + res.emission_rates["west"].flux_kg_s)
    assert set(res.rates_by_mode) == {"flow_raw", "flow_histo", "flow_hybrid", "flow_glob"}
    proc.set_pcs_lines([PCSLine(400, 100, 400, 400, "left", "east")])     # flipped normal
    res2 = proc.process_pair(*sc.frames(2), {"time": T0 + dt.timedelta(seconds=8), "exposure_a_us": 1,
                                             "exposure_b_us": 1})
    assert set(res2.emission_rates) == {"east", "total"} and res2.emission_rates["east"].flux_kg_s < 0
    with pytest.raises(ValueError, match="leaves"):
        proc.set_pcs_lines([PCSLine(600, 10, 900, 10)])
    with pytest.raises(ValueError, match="time"):
        proc.process_pair(*sc.frames(3), {"exposure_a_us": 1})


def _pairs(scene, n, frames=8):
    """A cheap stream: ``frames`` rendered frames reused cyclically, times advancing."""
    cache = [scene.frames(i) for i in range(frames)]
    for i in range(n):
        a, b = cache[i % frames]
        yield ImagePair(T0 + dt.timedelta(seconds=4 * i), a, b, 1, 1)


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_batch_memory_is_flat(tmp_path):
    sc = Scene()
    ca, cb = sc.clear()
    from pycam.processing.absorbance import ClearSky
    from pycam.processing.corrections import DarkLibrary

    darks = DarkLibrary.from_arrays({"on": sc.dark(), "off": sc.dark()})
    settings = default_settings(plume_distance_m=5000, min_cd=1e16, cross_corr_recal=2.0)
    chain = ProcessingChain(settings, sc.shape, darks=darks, clear=ClearSky.from_raw(ca, cb, darks=darks),
                            calibration=_linear_calibration(), pcs_lines=[PCSLine(400, 100, 400, 400, "right", "0")])
    outputs = RunOutputs(tmp_path)
    marks = {}
    n = 250

    def stream():
        for i, p in enumerate(_pairs(sc, n)):
            if i in (60, n - 1):
                marks[i] = (_rss_bytes(), tracemalloc.get_traced_memory()[0])
            if i == n - 100:
                tracemalloc.start()       # Python-level allocations over the last 100 pairs
            yield p

    try:
        summary = BatchProcessor(chain, outputs, workers=2).run(stream())
        traced_growth = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        outputs.close()
    assert summary.pairs_processed == n
    rss_growth = marks[n - 1][0] - marks[60][0]
    print(f"RSS after 60 pairs {marks[60][0] / 1e6:.1f} MB, after {n - 1}: {marks[n - 1][0] / 1e6:.1f} MB; "
          f"traced growth over the last 100 pairs {traced_growth / 1e3:.0f} kB")
    assert rss_growth < 8_000_000, f"RSS grew by {rss_growth / 1e6:.2f} MB over {n - 61} pairs"
    assert traced_growth < 300_000, f"Python allocations grew by {traced_growth / 1e3:.0f} kB over 100 pairs"
    rows = read_emission_rates(next((tmp_path / "line_0").glob("*flow_glob.txt")))
    assert len(rows) == n and sum(r.flux is not None for r in rows) >= n - 10


def test_interrupted_batch_leaves_complete_outputs(tmp_path):
    sc = Scene()

    def stream():
        for i, p in enumerate(_pairs(sc, 100)):
            if i == 25:
                raise KeyboardInterrupt
            yield p

    settings = default_settings(plume_distance_m=5000, min_cd=1e16)
    chain = ProcessingChain(settings, sc.shape, calibration=_linear_calibration(),
                            pcs_lines=[PCSLine(400, 100, 400, 400, "right", "0")])
    outputs = RunOutputs(tmp_path)
    summary = BatchProcessor(chain, outputs).run(stream())
    outputs.close()
    assert summary.interrupted and summary.pairs_processed == 25
    for mode in ("flow_hybrid", "flow_raw", "flow_histo", "flow_glob"):
        rows = read_emission_rates(next((tmp_path / "line_0").glob(f"*_{mode}.txt")))
        assert [r.time for r in rows] == [T0 + dt.timedelta(seconds=4 * i) for i in range(25)]


@pytest.fixture
def small_sim(sim_dataset):
    return sim_dataset


def _cli(*args, timeout=120):
    return subprocess.run([PYCAM, "process", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_cli_batch_on_simulated_data(small_sim, tmp_path):
    d, truth = small_sim
    cfg = tmp_path / "proc.yml"
    cfg.write_text(f"plume_distance_m: {truth['plume_distance_m']}\npolyorder_cal: 2\nsave_formats: [npy, fts]\n")
    out = tmp_path / "out"
    r = _cli(d / "Seq_1", "--out", out, "--cal-dir", d / "Cal_1", "--dark-dir", d / "Dark", "--clear-dir",
             d / "Clear", "--pcs", d / "pcs_line_0.txt", d / "pcs_line_1.txt", "--config", cfg, "--save-images",
             "--geometry", d / "cam_geom.txt")
    assert r.returncode == 0, r.stderr
    assert "flow_hybrid" in r.stdout and f"{len(truth['pairs'])} pair(s) processed" in r.stdout
    for name in ("process_config.yml", "pcs_line_0.txt", "pcs_line_1.txt", "cam_geom.txt", "cell_calibration.csv",
                 "summary.json"):
        assert (out / name).is_file(), name
    for line in ("0", "1", "total"):
        assert len(list((out / f"line_{line}").glob("*_EmissionRates_*.txt"))) == 4
    import csv

    rows = list(csv.DictReader(r for r in (out / "cell_calibration.csv").read_text().splitlines()
                               if not r.startswith("#")))
    assert [int(r["ppmm"]) for r in rows] == [0, *truth_cells(truth)]
    assert all(float(r["AA"]) == float(r["AA"]) for r in rows)   # plain numbers, parseable
    saved = sorted((out / "saved_images").iterdir())
    assert len(saved) == 4 * len(truth["pairs"])           # aa + cal, npy + fts
    from astropy.io import fits

    cal = np.load(next(p for p in saved if p.name.endswith("_SO2_cal.npy")))
    with fits.open(next(p for p in saved if p.name.endswith("_SO2_cal.fts"))) as hdul:
        np.testing.assert_array_equal(hdul[0].data, cal)
    assert cal.max() > 5e17
    rows = read_emission_rates(next((out / "line_total").glob("*flow_hybrid.txt")))
    mean_total = np.mean([r.flux for r in rows if r.flux is not None])
    assert mean_total == pytest.approx(2 * truth["emission_rate_kg_s"], rel=0.1)


def test_cli_bad_inputs_give_clear_errors(tmp_path, small_sim):
    d, _ = small_sim
    bad = tmp_path / "bad.yml"
    bad.write_text("min_cd: -5e30\n")
    r = _cli(d / "Seq_1", "--out", tmp_path / "o", "--config", bad)
    assert r.returncode == 2 and "min_cd" in r.stderr
    r = _cli(tmp_path / "nope", "--out", tmp_path / "o")
    assert r.returncode == 2 and "not a directory" in r.stderr
    (tmp_path / "empty").mkdir()
    r = _cli(tmp_path / "empty", "--out", tmp_path / "o")
    assert r.returncode == 1 and "no A/B Plume pairs" in r.stderr
    r = _cli(d / "Seq_1", "--out", tmp_path / "o", "--cal-dir", d / "Clear")
    assert r.returncode == 2 and "cell amount" in r.stderr
    # a sky reference region on the plume (clear-sky image unscaled) fails the reference check on
    # every pair: said loudly,
    # and every sample is written flagged BG_OUT_OF_BOUNDS (never a valid rate)
    strict = tmp_path / "strict.yml"
    strict.write_text("plume_distance_m: 5000\nbg_mode: 99\nambient_roi: [0, 200, 60, 260]\n")
    r = _cli(d / "Seq_1", "--out", tmp_path / "o2", "--cal-dir", d / "Cal_1", "--pcs", d / "pcs_line_0.txt",
             "--config", strict, "--no-progress")
    assert r.returncode == 0 and "failed the reference check" in r.stderr and "0 pair(s) processed" in r.stdout
    assert "are flagged (BG_OUT_OF_BOUNDS" in r.stderr
    rows = read_emission_rates(next((tmp_path / "o2" / "line_0").glob("*flow_hybrid.txt")))
    assert rows and all(row.flux is None and "BG_OUT_OF_BOUNDS" in row.flag_reason for row in rows)


def test_cli_watch_processes_pairs_as_they_arrive(small_sim, tmp_path):
    d, truth = small_sim
    watch = tmp_path / "incoming"
    watch.mkdir()
    files = sorted((d / "Seq_1").iterdir())
    cfg = tmp_path / "proc.yml"
    cfg.write_text(f"plume_distance_m: {truth['plume_distance_m']}\npolyorder_cal: 2\n")
    out = tmp_path / "out"

    def feed():
        for f in files[:12]:                       # six pairs, copied atomically (temp name + rename)
            tmp = watch / f".{f.name}.part"
            shutil.copyfile(f, tmp)
            tmp.rename(watch / f.name)
            time.sleep(0.05)

    proc = subprocess.Popen([PYCAM, "process", str(watch), "--out", str(out), "--cal-dir", str(d / "Cal_1"),
                             "--pcs", str(d / "pcs_line_0.txt"), "--config", str(cfg), "--watch", "--poll", "0.2",
                             "--idle-exit", "3", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    feeder = threading.Thread(target=feed)
    time.sleep(1.0)
    feeder.start()
    feeder.join()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    rows = read_emission_rates(next((out / "line_0").glob("*flow_hybrid.txt")))
    assert len(rows) == 6 and len({r.time for r in rows}) == 6


def test_real_plume_pairs_give_finite_aa(data_dir, artifacts_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pycam.processing.archive import find_plume_pairs, read_pair
    from pycam.processing.corrections import estimate_registration, subtract_dark

    folder = data_dir / "pycam_images" / "2019-09-18_pairs"
    pairs = find_plume_pairs(folder).pairs
    assert len(pairs) == 2
    first = read_pair(pairs[0])
    warp = estimate_registration(subtract_dark(first.img_a, None), subtract_dark(first.img_b, None),
                                 iterations=100, eps=1e-6)
    shift = np.hypot(warp[0, 2], warp[1, 2])
    assert 10 < shift < 100              # README: tens of pixels plus a slight rotation
    settings = {"bg_mode": 0, "surface_fit_rois": [[0, 0, 500, 40], [0, 0, 40, 486], [0, 446, 500, 486]]}
    proc = RealtimeProcessor(settings, warp=warp)
    images = [read_pair(p) for p in pairs]
    results = [proc.process_pair(i.img_a, i.img_b, i.meta) for i in images]
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, r in zip(axs, results):
        assert r.aa.shape == (486, 648) and np.isfinite(r.aa).all()
        sky = r.aa[:, :500]
        assert 0.005 < np.std(sky) < 0.2
        im = ax.imshow(r.aa, vmin=np.percentile(sky, 2), vmax=np.percentile(sky, 98))
        ax.set_title(f"AA {r.time:%Y-%m-%d %H:%M:%S} (ECC registered, bg mode 0)")
        fig.colorbar(im, ax=ax)
    fig.savefig(artifacts_dir / "processing_real_pairs_aa.png", dpi=70)
    plt.close(fig)


def test_cli_ctrl_c_leaves_complete_outputs(small_sim, tmp_path):
    import json
    import signal

    d, truth = small_sim
    cfg = tmp_path / "proc.yml"
    cfg.write_text(f"plume_distance_m: {truth['plume_distance_m']}\npolyorder_cal: 2\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([PYCAM, "process", str(d / "Seq_1"), "--out", str(out), "--cal-dir", str(d / "Cal_1"),
                             "--pcs", str(d / "pcs_line_0.txt"), "--config", str(cfg), "--watch", "--poll", "0.2",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    n = len(truth["pairs"])
    hybrid = out / "line_0" / "20260315_EmissionRates_flow_hybrid.txt"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if hybrid.exists() and len(hybrid.read_text().splitlines()) == n + 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "INTERRUPTED" in stdout
    for mode in ("flow_hybrid", "flow_glob", "flow_raw", "flow_histo"):
        rows = read_emission_rates(out / "line_0" / f"20260315_EmissionRates_{mode}.txt")
        assert len(rows) == n, mode                 # every processed pair, glob rows flushed at the stop
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["pairs_processed"] == n


def truth_cells(truth):
    return [c["ppmm"] for c in truth["cells"] if c["ppmm"]]
