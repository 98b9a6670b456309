"""DOAS calibration (cal_type_int 1) and the preloaded full_calibration.csv (cal_type_int 3) through the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pycam.formats.names import parse_time
from pycam.formats.pycam_outputs import read_emission_rates, read_full_calibration, write_doas_results

pytestmark = pytest.mark.slow

PYCAM = str(Path(sys.executable).parent / "pycam")


def _mean_flux(out: Path, mode="flow_hybrid", line="0"):
    rows = read_emission_rates(next((out / f"line_{line}").glob(f"*_{mode}.txt")))
    return np.mean([r.flux for r in rows if r.flux is not None]), rows


def test_doas_then_preloaded_calibration(sim_dataset, tmp_path):
    pytest.importorskip("pycam.doas.fov")
    d, truth = sim_dataset
    rng = np.random.default_rng(0)
    rows = []
    for p in truth["pairs"]:
        col = p["fov_column_molec_cm2"]
        rows.append((parse_time(p["time"]), col * (1 + 0.01 * rng.normal()), 0.02 * col + 1e16, None))
    doas_csv = write_doas_results(tmp_path / "doas_results.csv", rows)
    cfg = tmp_path / "doas.yml"
    cfg.write_text(f"plume_distance_m: {truth['plume_distance_m']}\ncal_type_int: 1\npolyorder_cal: 2\n"
                   "remove_doas_mins: null\n")
    out = tmp_path / "out_doas"
    common = ["--pcs", str(d / "pcs_line_0.txt"), "--no-progress", "--dark-dir", str(d / "Dark"),
              "--clear-dir", str(d / "Clear")]
    r = subprocess.run([PYCAM, "process", str(d / "Seq_1"), "--out", str(out), "--config", str(cfg),
                        "--doas-results", str(doas_csv), *common], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = read_full_calibration(out / "full_calibration.csv")
    fov = truth["spectrometer_fov"]
    assert np.hypot(table.fov_x - fov["x"], table.fov_y - fov["y"]) < 8
    assert len(table.records) >= 15 and table.records[-1].r_squared > 0.9
    flux, _ = _mean_flux(out)
    valid_truth = np.mean([p["lines"]["0"]["flux_kg_s"] for p in truth["pairs"][1:]])
    assert flux == pytest.approx(valid_truth, rel=0.1)
    # the written calibration reloads as a preloaded one and gives the same emission rates
    cfg3 = tmp_path / "pre.yml"
    cfg3.write_text(f"plume_distance_m: {truth['plume_distance_m']}\ncal_type_int: 3\n"
                    f"cal_series_path: {out / 'full_calibration.csv'}\n")
    out3 = tmp_path / "out_pre"
    r = subprocess.run([PYCAM, "process", str(d / "Seq_1"), "--out", str(out3), "--config", str(cfg3), *common],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    flux3, _ = _mean_flux(out3)
    assert flux3 == pytest.approx(flux, rel=1e-3)
    # cells + DOAS (cal_type_int 2): the cell sensitivity mask in front of the DOAS calibration
    cfg2 = tmp_path / "cell_doas.yml"
    cfg2.write_text(cfg.read_text().replace("cal_type_int: 1", "cal_type_int: 2"))
    out2 = tmp_path / "out_cell_doas"
    r = subprocess.run([PYCAM, "process", str(d / "Seq_1"), "--out", str(out2), "--config", str(cfg2),
                        "--doas-results", str(doas_csv), "--cal-dir", str(d / "Cal_1"), *common],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out2 / "cell_calibration.csv").is_file() and (out2 / "full_calibration.csv").is_file()
    flux2, _ = _mean_flux(out2)
    assert flux2 == pytest.approx(valid_truth, rel=0.1)
    # missing inputs are named
    r = subprocess.run([PYCAM, "process", str(d / "Seq_1"), "--out", str(tmp_path / "x"), "--config", str(cfg),
                        *common], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--doas-results" in r.stderr
