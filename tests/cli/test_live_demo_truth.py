"""The demo tells the truth: the headless live chain on a simulated station (real processes),
compared with the simulator's truth (issue 9 item 7, issue 10 item 5).

Run on the realistic scene, the demo's default: the spectrometer sees the dense plume near the
vent (1.6-3.6e18 molec/cm2), where the simulated on-band response bends like real cells, while the
PCS lines hold mostly lower columns.  A straight line with a free intercept read them -25 %; the
default calibration (2nd order through the origin, ``pycam.processing.doas_calibration``) must get
the rate within 10 %.  The calibration scatter (AA vs DOAS column, the fit, the true curve) goes to
``artifacts/live_demo_calibration.png``."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from pycam.cli.demo_live import HeadlessLiveChain, SimTruth, scene_lines
from pycam.station.launcher import start_simulated_station, write_station_config

pytestmark = pytest.mark.slow


@pytest.mark.timeout(360)
def test_live_rate_and_doas_calibration_match_the_truth(tmp_path, artifacts_dir):
    """Mean live rate after calibration within 10 % of truth after 180 s, with the FOV where the
    simulator put it and the default calibration (through the origin, bending upward as the
    scene's cells do); its slope (the secant S(AA)/AA at the median sampled AA, and the mean
    dS/dAA over the sampled AA) within 10 % of the true slope (issue 10).  The true slope is the
    same model fitted to the simulator's true FOV column against the AA the chain measured at each
    calibration sample, not the simulator's ideal AA curve: the measured AA is 10-15 % below that
    at 2-4e18 (the FOV mean of a non-uniform plume, light dilution), which the DOAS calibration is
    there to absorb (the summary's ``calibration.check`` reports that comparison)."""
    config_path = write_station_config(tmp_path / "demo.toml", data_dir=tmp_path / "data",
                                       spool_dir=tmp_path / "spool", framerate=1.0,
                                       overrides={"simulator": {"scene": "realistic"}})
    station = start_simulated_station(config_path, framerate=1.0, log_dir=tmp_path / "logs")
    try:
        truth = SimTruth(station.config)
        chain = HeadlessLiveChain(station.config, lines=scene_lines(truth), truth=truth, printer=lambda line: None)
        chain.start()
        live = station.client(name="live-test", on_message=chain.on_message, subscribe=("image", "spectrum"))
        assert live.wait_connected(10), live.last_error
        control = station.client(name="control")
        assert control.wait_connected(10), control.last_error
        control.request("all", "STC", True)
        control.request("all", "STS", True)
        control.request("CM1", "TPA", "Clear")      # the clear-sky pair pycam demo takes at start
        control.request("CM2", "TPB", "Clear")
        start = time.monotonic()
        while time.monotonic() - start < 180:
            time.sleep(1)
            chain.pump()
        chain.stop()
        at_180 = at_300 = chain.summary()     # the calibration is judged at 180 s already (stricter than 5 min)
        _plot_calibration(chain, truth, artifacts_dir / "live_demo_calibration.png")
    finally:
        station.stop()
    (tmp_path / "summary.json").write_text(json.dumps({"180": at_180, "300": at_300}, indent=1, default=str))
    print(json.dumps({"180": {k: at_180[k] for k in ("mean_live_rate_kg_s", "mean_truth_kg_s", "live_vs_truth",
                                                      "samples_used", "first_calibrated_sample")},
                      "300": {k: v for k, v in at_300["calibration"].items() if k != "samples"}},
                     indent=1, default=str))
    assert at_180["samples_used"] >= 30, at_180
    assert abs(at_180["live_vs_truth"]) <= 0.10, at_180
    cal = at_300["calibration"]
    assert cal["calibrated"] and cal["coeffs"][0] == 0.0 and cal["coeffs"][2] > 0, cal
    true_fov = cal["true_fov"]
    assert abs(cal["fov_x"] - true_fov["x"]) <= 3 and abs(cal["fov_y"] - true_fov["y"]) <= 3, cal
    assert abs(cal["fov_radius_px"] - true_fov["radius_px"]) <= 2, cal
    versus = cal["slope_vs_truth"]
    assert versus["n_samples"] == cal["n_points"] and cal["slope_rel_diff"] == versus["rel_diff"]["secant_at_median_aa"]
    assert abs(versus["rel_diff"]["secant_at_median_aa"]) <= 0.10, versus
    assert abs(versus["rel_diff"]["mean_derivative"]) <= 0.10, versus
    assert at_300["flagged_fraction"] < 0.2, at_300


def _plot_calibration(chain, truth, path) -> None:
    """AA in the FOV vs DOAS column with the adopted fit and the simulator's true curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    current = chain.live.processor.calibrator.current
    status = chain.status
    if current is None or status is None or not status.calibrated:
        return
    times, aa, columns, _ = current.samples
    grid = np.linspace(0.0, 1.1 * float(np.max(columns)), 200)
    true_aa = np.asarray(truth.scene.aa_curve(grid)["aa"])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(aa, columns, ".", ms=4, label=f"DOAS samples ({len(aa)})")
    ax.plot(aa, truth.fov_columns(times), "x", ms=3, color="0.4", label="true FOV column at the same AA")
    ax.plot(true_aa, grid, "k-", lw=1, label="simulator's ideal AA curve")
    span = np.linspace(0.0, 1.05 * float(np.max(aa)), 200)
    ax.plot(span, status.column(span), "r-", label=f"live fit S = {status.polynomial_text()}")
    true_coeffs = chain.summary()["calibration"].get("slope_vs_truth", {}).get("true_coeffs")
    if true_coeffs:
        ax.plot(span, np.polynomial.polynomial.polyval(span, true_coeffs), "k:", label="same fit to the true columns")
    line = np.polyfit(aa, columns, 1)
    ax.plot(span, np.polyval(line, span), "g--", lw=1, label=f"straight line with intercept ({line[1]:.1e})")
    ax.set_xlabel("AA in the DOAS FOV")
    ax.set_ylabel("SO2 column, molec/cm2")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@pytest.mark.timeout(120)
def test_headless_demo_prints_live_rate_flag_and_truth_and_writes_the_summary(tmp_path):
    summary = tmp_path / "S.json"
    out = subprocess.run([sys.executable, "-m", "pycam", "demo", "--headless", "--duration", "12",
                          "--data-dir", str(tmp_path / "data"), "--config-file", str(tmp_path / "demo.toml"),
                          "--summary-json", str(summary)], capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("demo: live 20")]
    assert len(lines) >= 5, out.stdout
    assert all(", flag " in line and ", truth " in line for line in lines)
    assert "CAL_MISSING" in lines[0]          # no calibration in the first seconds, and it says so
    data = json.loads(summary.read_text())
    assert data["samples"] >= 5 and data["nominal_emission_rate_kg_s"] == 5.0
    assert data["flagged_fraction_all"] == 1.0 and data["mean_live_rate_kg_s"] is None
    again = subprocess.run([sys.executable, "-m", "pycam", "demo", "--headless", "--duration", "1",
                            "--summary-json", str(summary)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
