"""The GUI against the real simulated station (master, CM1, CM2, SPC as processes on
loopback), with the real camera chain and DOAS retrieval: the acceptance tests of issue 5.

One station and one window serve the whole module (starting them is the slow part); the
tests run in file order.  Screenshots of every view go to ``artifacts/``.
"""
from __future__ import annotations

import gc
import math
import time

import pytest

from gui_drive import assert_not_blank, drag, pump_for, pump_until, screenshot

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    from pycam.station.launcher import start_simulated_station, write_station_config

    base = tmp_path_factory.mktemp("gui-station")
    config_path = write_station_config(base / "station.toml", data_dir=base / "data", spool_dir=base / "spool",
                                       framerate=1.0, overrides={"health": {"heartbeat_s": 2.0}})
    processes = start_simulated_station(config_path, framerate=1.0, log_dir=base / "logs")
    yield processes
    processes.stop()


@pytest.fixture(scope="module")
def app(station, tmp_path_factory):
    import tkinter as tk

    from pycam.gui.app import PyCamApp

    root = tk.Tk()
    root.geometry("1366x768+0+0")
    application = PyCamApp(root, station.config, state_dir=tmp_path_factory.mktemp("gui-state"))
    assert pump_until(root, lambda: application.ready and application.link.state == "connected", 60)
    yield application
    application.quit()
    del application, root
    gc.collect()   # free the Tk objects on the main thread (see conftest)


@pytest.mark.timeout(480)
def test_live_views_within_60_s(app, artifacts_dir):
    """Live A/B images, a spectrum with its fit, an SO2 image and a growing emission-rate series."""
    root = app.root
    camera, spectrometer = app.views["Camera"], app.views["Spectrometer"]
    analysis = app.views["Analysis"]
    app.show_view("Camera")
    app.views["Acquisition"].start_button.invoke()
    assert pump_until(root, lambda: {"A", "B"} <= set(camera.frames), 60), "no live A/B images"
    shot = screenshot(root, artifacts_dir / "gui_camera_view.png")
    assert_not_blank(shot, "camera view")

    app.show_view("Spectrometer")
    assert pump_until(root, lambda: spectrometer.last_fit is not None and spectrometer.last_fit.ok, 60), \
        "no DOAS fit of a live spectrum"
    fit = spectrometer.last_fit
    assert fit.model.size > 20 and math.isfinite(fit.column) and fit.column > 1e16
    pump_for(root, 1.0)
    assert_not_blank(screenshot(root, artifacts_dir / "gui_spectrometer_view.png"), "spectrometer view")

    app.show_view("Analysis")
    # the default PCS line crosses the plume; rates appear once the live DOAS calibration is fitted
    # (a FOV search is adopted when a second one confirms it: ~100-130 one-second samples here)
    assert pump_until(root, lambda: analysis.last_result is not None and "column" in analysis.last_result.images,
                      240), f"no calibrated SO2 image: {analysis.calibration_var.get()}"
    shown = analysis.calibration_var.get()   # the calibration's FOV, fit with errors, points and age
    assert "DOAS cal: FOV" in shown and "±" in shown and " points" in shown and ", age " in shown, shown
    assert pump_until(root, lambda: len(analysis.rates.get("total", [])) >= 3, 60), "no emission-rate series"
    n = len(analysis.rates["total"])
    assert pump_until(root, lambda: len(analysis.rates["total"]) >= n + 2, 30), "emission-rate series not growing"
    assert all(math.isfinite(r[1]) for r in analysis.rates["total"])
    assert analysis.fov_patch.get_visible()
    assert_not_blank(screenshot(root, artifacts_dir / "gui_analysis_view.png"), "analysis view")
    for title in ("Acquisition", "Post-processing", "Schedule"):
        app.show_view(title)
        pump_for(root, 0.5)
        shot = screenshot(root, artifacts_dir / f"gui_{title.lower().replace('-', '')}_view.png")
        assert float(shot.std()) > 5, f"{title} view blank"
    # the first tab shows everything at once: what `pycam demo` opens with
    overview = app.views["Overview"]
    app.show_view("Overview")
    updates = dict(overview.updates)
    assert pump_until(root, lambda: all(overview.updates[k] >= updates[k] + 2 for k in ("A", "B", "so2", "rate")), 30)
    assert overview.updates["doas"] > 0 and len(overview.rates) >= 3
    assert_not_blank(screenshot(root, artifacts_dir / "gui_overview.png"), "overview")


def test_overview_shows_every_devices_real_heartbeat(app, artifacts_dir):
    """Health rows filled by the real services' heartbeats; loopback clocks agree (no warning)."""
    root = app.root
    app.show_view("Overview")
    panel = app.views["Overview"].health
    assert pump_until(root, lambda: len(panel.health) == 3 and all(
        h.clock_offset_ms is not None and h.last_frame_age_s is not None for h in panel.health.values()), 60), \
        f"heartbeats: {panel.health}"
    for device, health in panel.health.items():
        assert abs(health.clock_offset_ms) < 50 and health.clock_rtt_ms >= 0, (device, health)
        assert health.acquiring and health.uptime_s > 0 and health.disk_free_mb > 0
        assert not [w for w in panel.warnings[device] if "clock" in w], panel.warnings[device]
    assert panel.values("CM1")["link"] == "connected"
    shot = screenshot(root, artifacts_dir / "gui_overview_health_station.png")
    assert_not_blank(shot, "overview with real heartbeats")


def test_drawn_pcs_line_gets_its_emission_rate(app):
    analysis = app.views["Analysis"]
    app.show_view("Analysis")
    pump_for(app.root, 0.5)
    drag(app.root, analysis.image_plot, analysis.image_ax, (420, 80), (420, 420))
    names = [line.name for line in analysis.editor.lines]
    assert len(names) == 2, names
    new = names[-1]
    assert pump_until(app.root, lambda: len(analysis.rates.get(new, [])) >= 2, 60), \
        f"no emission rate for the drawn line {new}: {analysis.calibration_var.get()}"
    assert math.isfinite(analysis.rates[new][-1][1])


def test_setting_change_shows_the_device_reply(app):
    row = app.views["Camera"].rows[("CM2", "SSB")]
    row.var.set("0")
    assert not row.submit()   # refused in the form, never sent
    row.var.set("20000")
    assert row.submit()
    assert pump_until(app.root, lambda: row.last_reply is not None, 20), row.status.get()
    assert row.last_reply.kind == "reply" and row.last_reply.device == "CM2"
    assert row.last_reply.value == 20000
    auto = app.views["Camera"].rows[("CM2", "ATB")]
    auto.var.set(True)
    auto.submit()
    assert pump_until(app.root, lambda: auto.last_reply is not None, 20)


def test_test_image_during_continuous_acquisition(app):
    acquisition = app.views["Acquisition"]
    before = len(acquisition.test_frames)
    acquisition.test_images()
    assert pump_until(app.root, lambda: len([f for f in acquisition.test_frames[before:] if "_Test" in f]) >= 2, 30)
    # acquisition carries on
    shown = app.views["Camera"].frames_shown
    assert pump_until(app.root, lambda: app.views["Camera"].frames_shown >= shown + 2, 20)


def test_retrieve_settings(app):
    acquisition = app.views["Acquisition"]
    acquisition.retrieve_settings()
    assert pump_until(app.root, lambda: {"CM1", "CM2", "SPC"} <= set(acquisition.settings_report), 20)


def test_master_killed_indicator_reconnects(app, station):
    pane = app.connection
    start = len(pane.history)
    station.kill("master")
    assert pump_until(app.root, lambda: "reconnecting" in pane.history[start:], 20), pane.history[start:]
    assert pane.state_var.get() == "reconnecting"
    station.restart("master")
    assert pump_until(app.root, lambda: pane.state_var.get() == "connected", 60), pane.history[start:]
    # data flows again once the devices are back
    shown = app.views["Camera"].frames_shown
    app.start_acquisition()
    assert pump_until(app.root, lambda: app.views["Camera"].frames_shown > shown + 2, 60)


def test_dark_set_progress(app):
    acquisition = app.views["Acquisition"]
    acquisition.dark_set(cameras=True)
    assert acquisition.dark_waiting == {"CM1", "CM2"}
    assert pump_until(app.root, lambda: str(acquisition.dark_progress["mode"]) == "indeterminate"
                      or not acquisition.dark_waiting, 20)
    assert pump_until(app.root, lambda: not acquisition.dark_waiting, 120), acquisition.dark_status.get()
    assert float(acquisition.dark_progress["value"]) == 100 and acquisition.dark_frames >= 2
    assert "finished" in acquisition.dark_status.get()


def test_gas_cell_wizard_on_the_station(app, tmp_path, artifacts_dir):
    """dark -> clear -> cells through the real cameras; the fit is shown and saved."""
    wizard = app.views["Acquisition"].wizard
    app.show_view("Acquisition")
    wizard.begin(tmp_path / "Cal_1")
    wizard.shots.set("1")
    wizard.shutter_a.set("200000")
    wizard.shutter_b.set("100000")
    assert wizard.prepare()
    pump_for(app.root, 2)
    for frame_type in ("Dark", "Clear"):
        assert wizard.shoot(frame_type)
        pump_for(app.root, 1.5)
    for ppmm in ("0", "300", "1200"):
        wizard.cell_ppmm.set(ppmm)
        assert wizard.shoot_cell()
        pump_for(app.root, 1.5)
    expected = {f"{band}:{kind}" for band in "AB" for kind in ("Dark", "Clear", "0ppmm", "300ppmm", "1200ppmm")}
    assert pump_until(app.root, lambda: expected <= set(wizard.counts) and not wizard._pending_writes, 30), \
        wizard.counts
    wizard.fit()
    assert pump_until(app.root, lambda: wizard.calibration is not None or "failed" in wizard.status.get(), 60)
    assert wizard.calibration is not None, wizard.status.get()
    assert list(wizard.calibration.ppmm) == [0, 300, 1200] and wizard.calibration.slope > 0
    assert (tmp_path / "Cal_1" / "cell_calibration.png").is_file()
    pump_for(app.root, 0.5)
    assert_not_blank(screenshot(app.root, artifacts_dir / "gui_calibration_wizard.png"), "calibration wizard")
    wizard.finish()


def test_stop_acquisition(app):
    acquisition = app.views["Acquisition"]
    acquisition.stop_button.invoke()
    assert pump_until(app.root, lambda: acquisition.acquiring.get() == "stopped", 20)
    pump_for(app.root, 3)
    shown = app.views["Camera"].frames_shown
    pump_for(app.root, 4)
    assert app.views["Camera"].frames_shown <= shown + 2   # at most frames already in flight


def test_wrong_secret_is_reported(station, tmp_path):
    """Authentication failures reach the messages pane (here: the link's queue, no window)."""
    import dataclasses

    from pycam.config import generate_secret
    from pycam.gui.station_link import StationLink
    from pycam.gui.worker import GuiQueue

    values = {k: dict(v) for k, v in station.config.values.items()}
    values["network"]["secret"] = generate_secret()
    wrong = dataclasses.replace(station.config, values=values)
    queue = GuiQueue()
    errors: list[str] = []
    states: list[str] = []
    queue.subscribe("error", errors.append)
    queue.subscribe("state", states.append)
    link = StationLink(queue, wrong)
    link.connect()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("authentication" in e for e in errors):
            link.check_error()   # the window calls this every second
            queue.pump(0.1)
            time.sleep(0.05)
    finally:
        link.disconnect(wait=True)
    assert any("authentication failed" in e for e in errors), (errors, states)
    assert "connected" not in states

