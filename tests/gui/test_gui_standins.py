"""GUI behaviour against stand-ins of the station client and the camera chain.

The stand-ins speak the real protocol message types; these tests check the GUI's own logic
(validation before sending, replies shown, PCS lines drawn with the mouse, blitting,
schedule rules, gas-cell wizard).  tests/gui/test_gui_station.py repeats the key ones
against the real simulated station.
"""
from __future__ import annotations

import numpy as np
import pytest

from gui_drive import drag, pump_until
from standins import FakeStationClient

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture
def app(standin_app):
    return standin_app


def client(app) -> FakeStationClient:
    return app.link.client


def test_theme_and_shortcuts(app):
    from pycam.gui.app import SHORTCUTS

    assert app.theme == "arc"
    assert app.root.bind_all("<F5>") and app.root.bind_all("<Control-k>")
    assert len(SHORTCUTS) >= 8
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<Alt-Key-3>")  # keyboard tab switch
    pump_until(app.root, lambda: app.notebook.index("current") == 2, 5)
    assert app.notebook.select() == str(app.views["Spectrometer"])


def test_bad_value_is_refused_in_the_form_and_not_sent(app):
    row = app.views["Camera"].rows[("CM1", "SSA")]
    for bad in ("abc", "0", "6000002", "1.5"):
        row.var.set(bad)
        assert row.submit() is False
        assert row.status.get().startswith("refused"), row.status.get()
    assert not [s for s in client(app).sent if s[1] == "SSA"]


def test_setting_change_shows_the_device_reply(app):
    row = app.views["Camera"].rows[("CM1", "SSA")]
    row.var.set("5000")
    row.button.invoke()
    assert ("CM1", "SSA", 5000) in client(app).sent
    assert pump_until(app.root, lambda: row.last_reply is not None, 10)
    assert row.last_reply.value == 5000 and row.last_reply.device == "CM1"
    assert "CM1" in row.status.get()


def test_start_stop_acquisition_and_blitting(app):
    camera = app.views["Camera"]
    app.show_view("Camera")
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<F5>")
    pump_until(app.root, lambda: ("all", "STC", True) in client(app).sent, 5)
    assert ("SPC", "STS", True) in client(app).sent
    assert pump_until(app.root, lambda: camera.frames_shown >= 10, 30)
    assert app.views["Acquisition"].acquiring.get() == "running"
    full_before = camera.plot.full_draws
    shown_before = camera.frames_shown
    pump_until(app.root, lambda: camera.frames_shown >= shown_before + 8, 30)
    # frames are drawn by blitting: no whole-figure redraw per frame
    assert camera.plot.full_draws - full_before <= 1
    assert camera.plot.blits >= 8
    app.views["Acquisition"].stop_button.invoke()
    assert pump_until(app.root, lambda: app.views["Acquisition"].acquiring.get() == "stopped", 5)
    assert ("all", "SPC", True) in client(app).sent


def test_pcs_line_drawn_with_the_mouse_gets_an_emission_rate(app):
    app.show_view("Analysis")
    analysis = app.views["Analysis"]
    app.start_acquisition()
    assert pump_until(app.root, lambda: analysis.results_shown >= 2, 30)
    analysis.editor.set_lines([])  # start without the default line
    drag(app.root, analysis.image_plot, analysis.image_ax, (100, 330), (520, 160))
    assert len(analysis.editor.lines) == 1
    line = analysis.editor.lines[0]
    assert abs(line.x0 - 100) <= 3 and abs(line.y0 - 330) <= 3 and abs(line.x1 - 520) <= 3
    assert pump_until(app.root, lambda: "0" in analysis.rates and len(analysis.rates["0"]) >= 2, 30)
    assert "total" in analysis.rates
    # move the line by its body, then delete it with a right click
    drag(app.root, analysis.image_plot, analysis.image_ax, (310, 245), (310, 200))
    moved = analysis.editor.lines[0]
    assert moved.y0 < line.y0 - 20
    drag(app.root, analysis.image_plot, analysis.image_ax, (310, 200), (310, 200), steps=1, button=3)
    assert analysis.editor.lines == []


def test_pcs_lines_save_in_pycam_format(app, tmp_path):
    from pycam.formats.geometry import read_pcs_line

    editor = app.views["Analysis"].editor
    editor.set_lines([])
    editor.add_line(273, 236, 408, 101)
    editor.flip_selected()
    paths = editor.save(tmp_path / "lines")
    assert (tmp_path / "lines" / "pcs_line_0.txt").read_text() == "x=273,408\ny=236,101\norientation=right\n"
    assert read_pcs_line(paths[0]).orientation == "right"


def test_default_line_and_remembered_lines(app, tk_root, tmp_path):
    from pycam.gui.app import DEFAULT_PCS_LINE, load_saved_lines

    editor = app.views["Analysis"].editor
    assert editor.lines == [DEFAULT_PCS_LINE]
    editor.add_line(10, 20, 200, 220)
    state = tmp_path / "gui-state"
    assert pump_until(tk_root, lambda: len(load_saved_lines(state)) == 2, 10)
    editor.delete(0)
    assert pump_until(tk_root, lambda: [l.name for l in load_saved_lines(state)] == ["1"], 10)


def test_test_image_during_acquisition(app):
    acquisition = app.views["Acquisition"]
    app.start_acquisition()
    assert pump_until(app.root, lambda: app.views["Camera"].frames_shown >= 4, 30)
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<Control-t>")
    assert pump_until(app.root, lambda: any("_Test" in f for f in acquisition.test_frames), 10)
    assert "Test" in acquisition.last_test.get()


def test_dark_set_progress_and_settings_retrieval(app):
    acquisition = app.views["Acquisition"]
    acquisition.dark_set(cameras=True)
    assert pump_until(app.root, lambda: float(acquisition.dark_progress["value"]) == 100, 10)
    acquisition.retrieve_settings()
    assert pump_until(app.root, lambda: acquisition.settings_report, 10)
    assert acquisition.settings_tree.get_children()


def test_schedule_validation(app, tmp_path):
    from pycam.config import load_config

    view = app.views["Schedule"]
    view.vars["start_time"].set("09:00")
    view.vars["stop_time"].set("08:00")
    assert view.validate() is None and "after start" in view.status.get()
    view.vars["stop_time"].set("17:00")
    view.vars["dark_time"].set("18:00")
    assert view.validate() is None and "inside" in view.status.get()
    view.vars["dark_time"].set("25:00")
    assert view.validate() is None
    view.vars["dark_time"].set("16:30")
    view.vars["enabled"].set(True)
    assert view.validate() is not None
    written = view.save(tmp_path / "new.toml")
    loaded = load_config(written)
    assert loaded["schedule"]["start_time"] == "09:00" and loaded["schedule"]["enabled"] is True
    assert loaded["network"]["secret"] == app.config["network"]["secret"]


def test_gas_cell_wizard_fits_and_saves(app, tmp_path):
    wizard = app.views["Acquisition"].wizard
    wizard.begin(tmp_path / "Cal_test")
    wizard.shots.set("1")
    assert wizard.prepare()
    for frame_type in ("Dark", "Clear"):
        assert wizard.shoot(frame_type)
    for ppmm in ("0", "300", "1200"):
        wizard.cell_ppmm.set(ppmm)
        assert wizard.shoot_cell()
    wizard.cell_ppmm.set("-5")
    assert not wizard.shoot_cell()
    assert pump_until(app.root, lambda: len(wizard.counts) == 10 and not wizard._pending_writes, 20)
    wizard.fit()
    assert pump_until(app.root, lambda: wizard.calibration is not None or "failed" in wizard.status.get(), 30)
    assert wizard.calibration is not None, wizard.status.get()
    assert wizard.calibration.slope > 0
    for name in ("cell_calibration.txt", "cell_calibration.csv", "cell_calibration.png"):
        assert (tmp_path / "Cal_test" / name).is_file()
    wizard.finish()
    assert ("CM1", "ATA", True) in client(app).sent


def test_state_indicator_follows_the_link(app):
    pane = app.connection
    assert pump_until(app.root, lambda: pane.state_var.get() == "connected", 5)
    app.disconnect()
    assert pump_until(app.root, lambda: pane.state_var.get() in ("down", "stopped"), 5)
    app.connect()
    assert pump_until(app.root, lambda: pane.state_var.get() == "connected", 5)


def test_messages_pane_lists_replies_events_and_errors(app):
    pane = app.connection
    app.views["Acquisition"].dark_set(cameras=True)
    app.send("CM1", "SMX", 5)   # out of range: the stand-in answers with an error like the station
    assert pump_until(app.root, lambda: {"reply", "event", "error"} <= {m.kind for m in pane.messages}, 10)
    rows = [pane.tree.item(i, "values") for i in pane.tree.get_children()]
    kinds = {r[2] for r in rows}
    assert {"reply", "event", "error", "sent"} <= kinds
    error_row = next(r for r in rows if r[2] == "error" and "SMX" in r[3])
    assert error_row[1] == "CM1" and len(error_row[0]) == 8  # device and HH:MM:SS time


def test_display_options_wait_for_a_background_render(app, monkeypatch):
    """The renderer writes the colour-scale limits back: a change made under it was lost."""
    import threading

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    camera = app.views["Camera"]
    app.show_view("Camera")
    assert pump_until(app.root, lambda: camera.plot.full_draws > 0 and not camera.plot.rendering, 20)
    gate, real_draw = threading.Event(), FigureCanvasAgg.draw

    def held_draw(canvas, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            gate.wait(10)   # the background render is held open
        return real_draw(canvas, *args, **kwargs)

    monkeypatch.setattr(FigureCanvasAgg, "draw", held_draw)
    camera.plot.request_full_draw()
    camera.plot.refresh()
    assert camera.plot.rendering
    before = camera.images["A"].get_clim()
    camera.vmin_var.set("200")
    camera.vmax_var.set("700")
    camera.apply_display()
    assert camera.images["A"].get_clim() == before and camera.plot._after_render   # not under the render
    gate.set()
    assert pump_until(app.root, lambda: not camera.plot.rendering and not camera.plot._after_render, 20)
    assert camera.images["A"].get_clim() == camera.images["B"].get_clim() == (200.0, 700.0)
    assert camera.colourbar.norm.vmin == 200.0 and not camera.plot.render_errors


def test_camera_profile_on_click_and_display_options(app):
    from gui_drive import data_xy_to_widget

    camera = app.views["Camera"]
    app.show_view("Camera")
    app.start_acquisition()
    assert pump_until(app.root, lambda: {"A", "B"} <= set(camera.frames), 20)
    x, y = data_xy_to_widget(camera.plot, camera.axes["A"], 300, 240)
    camera.plot.widget.event_generate("<ButtonPress-1>", x=x, y=y)
    camera.plot.widget.event_generate("<ButtonRelease-1>", x=x, y=y)
    app.root.update()
    assert abs(camera.profile_index - 240) <= 2
    profile = camera.profile("A")
    assert profile is not None and profile.size == 648
    assert np.array_equal(profile, camera.frames["A"].pixels[camera.profile_index])
    camera.vmin_var.set("500")
    camera.vmax_var.set("100")
    camera.apply_display()
    assert "min < max" in camera.display_error.get()
    camera.vmax_var.set("900")
    camera.cmap_var.set("inferno")
    camera.apply_display()   # applied at once, or when a background render in progress is back
    assert pump_until(app.root, lambda: not camera.plot.rendering and not camera.plot._after_render, 10)
    assert camera.images["A"].get_clim() == (500.0, 900.0) and camera.images["B"].get_cmap().name == "inferno"
