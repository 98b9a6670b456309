"""Station health on the Overview tab, fields that follow the station, typed events, SCH.

Against the protocol-speaking stand-ins (tests/gui/standins.py), which build their events
from pycam.protocol.events like the station does."""
from __future__ import annotations

import pytest

from gui_drive import assert_not_blank, pump_until, screenshot
from standins import FakeStationClient

from pycam.protocol import events

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def client(app) -> FakeStationClient:
    return app.link.client


def test_overview_shows_each_devices_health_and_a_clock_offset_warning(standin_app, artifacts_dir):
    app = standin_app
    client(app).clock_offsets_ms["CM2"] = 120.0       # camera B's clock is 120 ms off
    app.show_view("Overview")
    app.views["Acquisition"].start_acquisition()
    panel = app.views["Overview"].health
    assert pump_until(app.root, lambda: len(panel.health) == 3 and panel.health["CM1"].acquiring
                      and app.views["Overview"].updates["A"] >= 3, 30)
    assert panel.warnings["CM1"] == [] and panel.warnings["SPC"] == []
    assert any("pairing breaks" in w and "+120 ms" in w for w in panel.warnings["CM2"]), panel.warnings
    row = panel.values("CM2")
    assert row["clock"].startswith("+120.0 ms") and row["link"] == "connected" and row["temp"] == "48 °C"
    assert "pairing breaks" in row["warnings"] and panel.values("CM1")["warnings"] == "ok"
    assert "CM2: clock +120 ms" in panel.summary.get()
    image = screenshot(app.root, artifacts_dir / "gui_overview_health.png")
    assert_not_blank(image, "overview with health panel")
    # the row of camera B is drawn in the warning colour (red text somewhere in the panel)
    top = image[: panel.winfo_rooty() + panel.winfo_height() + 5]
    red = (top[..., 2] > 150) & (top[..., 1] < 80) & (top[..., 0] < 80)
    assert red.sum() > 50, "no warning text drawn"


def test_disk_full_and_its_clearing_show_on_the_master_row(standin_app):
    app = standin_app
    panel = app.views["Overview"].health
    client(app).on_message(events.Storage(state="full", reason="disk full: 12 MB free").as_event("master"))
    assert pump_until(app.root, lambda: panel.warnings.get("master"), 5)
    assert "data disk full" in panel.values("master")["warnings"]
    client(app).on_message(events.Storage(state="ok", refused=4, duration_s=30.0).as_event("master"))
    assert pump_until(app.root, lambda: panel.warnings.get("master") == [], 5)


def test_shutter_field_follows_auto_exposure(standin_app):
    app = standin_app
    row = app.views["Camera"].rows[("CM1", "SSA")]
    assert row.var.get() == "100000"
    app.views["Acquisition"].start_acquisition()
    assert pump_until(app.root, lambda: row.var.get() != "100000", 20), "shutter field never refreshed"
    assert pump_until(app.root, lambda: row.var.get() == str(client(app).shutter_us["CM1"]), 10)


def test_acquisition_state_follows_the_typed_event(standin_app):
    app = standin_app
    view = app.views["Acquisition"]
    client(app).on_message(events.Acquisition(acquiring=True, devices=("CM1", "CM2", "SPC")).as_event("master"))
    assert pump_until(app.root, lambda: view.acquiring.get() == "running", 5)
    client(app).on_message(events.Acquisition(acquiring=False).as_event("master"))
    assert pump_until(app.root, lambda: view.acquiring.get() == "stopped", 5)


def test_schedule_tab_sends_what_it_edits(standin_app):
    app = standin_app
    view = app.views["Schedule"]
    view.vars["start_time"].set("06:00")
    view.vars["stop_time"].set("18:00")
    view.vars["dark_time"].set("17:30")
    view.vars["enabled"].set(True)
    assert view.send()
    sent = [s for s in client(app).sent if s[1] == "SCH"]
    assert sent and sent[0][0] == "master" and sent[0][2]["dark_time"] == "17:30"
    assert pump_until(app.root, lambda: view.station_reply is not None, 10)
    assert view.station_reply.kind == "reply" and "applies this schedule" in view.status.get()
    view.vars["dark_time"].set("19:00")
    assert not view.send() and len([s for s in client(app).sent if s[1] == "SCH"]) == 1


def test_camera_form_with_gain_rows_fits_the_laptop_screen(standin_app):
    app = standin_app
    app.show_view("Camera")
    view = app.views["Camera"]
    assert pump_until(app.root, lambda: view.winfo_ismapped(), 5)
    last = view.rows[("all", "RWC")].widget
    assert last.winfo_rooty() + last.winfo_height() <= view.winfo_rooty() + view.winfo_height()
    assert ("CM1", "AGA") in view.rows and ("CM2", "AGB") in view.rows
