"""Units of the GUI that need no window: the event queue, the task runner, message
summaries, PCS normals, scales and the address editor's validation."""
from __future__ import annotations

import datetime as dt
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_queue_coalesces_and_keeps_order():
    from pycam.gui.worker import GuiQueue

    q = GuiQueue()
    seen = []
    q.subscribe("image", lambda p: seen.append(("image", p)))
    q.subscribe("message", lambda p: seen.append(("message", p)))
    q.post("image", 1, coalesce="A")
    q.post("message", "m1")
    q.post("image", 2, coalesce="A")
    q.post("image", 10, coalesce="B")
    q.post("message", "m2")
    assert q.pump(1.0) == 4
    assert seen == [("message", "m1"), ("image", 2), ("image", 10), ("message", "m2")]
    assert q.dropped == 1


def test_queue_handler_error_does_not_stop_the_pump():
    from pycam.gui.worker import GuiQueue

    q = GuiQueue()
    got = []
    q.subscribe("x", lambda p: 1 / 0)
    q.subscribe("x", got.append)
    q.post("x", 5)
    q.pump(1.0)
    assert got == [5] and "ZeroDivisionError" in q.handler_errors[0]


def test_queue_pump_respects_its_budget():
    from pycam.gui.worker import GuiQueue

    q = GuiQueue()
    q.subscribe("slow", lambda p: time.sleep(0.02))
    for i in range(20):
        q.post("slow", i)
    delivered = q.pump(0.05)
    assert 1 <= delivered < 20 and q.pending() == 20 - delivered


def test_task_runner_reports_results_and_errors_through_the_queue():
    from pycam.gui.worker import GuiQueue, TaskRunner

    q = GuiQueue()
    runner = TaskRunner(q)
    results, errors, threads = [], [], []
    runner.submit(lambda: threads.append(threading.current_thread().name) or 42, on_done=results.append)
    runner.submit(lambda: 1 / 0, on_error=errors.append)
    deadline = time.monotonic() + 5
    while (not results or not errors) and time.monotonic() < deadline:
        q.pump(0.1)
        time.sleep(0.01)
    runner.shutdown()
    assert results == [42] and isinstance(errors[0], ZeroDivisionError)
    assert threads[0] != threading.main_thread().name


def test_tick_monitor():
    from pycam.gui.worker import TickMonitor

    m = TickMonitor(0.01)
    m.tick()
    time.sleep(0.03)
    m.tick()
    assert m.max_gap_s >= 0.03 and m.max_blocked_s >= 0.02


def test_message_summaries_of_protocol_messages():
    from pycam.gui.ui_messages import decode_data, summarize_message
    from pycam.protocol.messages import Data, DataMeta, Error, Event, Reply

    s = summarize_message(Reply(7, "CM1", "SSA", 1000, "sess"))
    assert (s.kind, s.device, s.request_id, s.value) == ("reply", "CM1", "7", 1000)
    e = summarize_message(Error("SSA", "value 0 out of range 1..6000001", 8, "CM1"))
    assert e.kind == "error" and "out of range" in e.text and e.request_id == "8"
    ev = summarize_message(Event("progress", "CM2", {"done": 3, "total": 40}))
    assert ev.kind == "event" and ev.key == "progress" and ev.value["total"] == 40
    pixels = np.arange(486 * 648, dtype="<u2").reshape(486, 648) % 1024
    meta = DataMeta("image", "2024-05-01T120000_fltrB_1ag_5000ss_Test.png", "CM2", (486, 648), "<u2",
                    "2024-05-01T12:00:00+00:00", "Test", band="off", exposure_us=5000)
    frame = decode_data(Data(meta, pixels.tobytes()))
    assert frame.band == "B" and frame.frame_type == "Test" and frame.exposure_us == 5000
    assert np.array_equal(frame.pixels, pixels)
    bad = DataMeta("image", "not_a_pycam_name.png", "CM2", (486, 648), "<u2", "2024-05-01T12:00:00+00:00", "Test")
    with pytest.raises(ValueError):
        decode_data(Data(bad, pixels.tobytes()))


def test_decoded_spectrum_is_the_drivers_spectrum_frame():
    """One SpectrumFrame: a data frame decodes to the type a spectrometer driver captures."""
    from pycam.drivers.base import SpectrumFrame
    from pycam.gui.ui_messages import decode_data
    from pycam.protocol.messages import Data, DataMeta

    spectrum = np.stack([np.linspace(280.0, 420.0, 2048), np.arange(2048.0)])
    name = "2024-05-01T120004_150ss_10coadd_Dark.npy"
    meta = DataMeta("spectrum", name, "SPC", (2, 2048), "<f8", "2024-05-01T12:00:04+00:00", "Dark",
                    integration_ms=150, coadd=10)
    frame = decode_data(Data(meta, spectrum.astype("<f8").tobytes()))
    assert type(frame) is SpectrumFrame
    assert (frame.time_string, frame.frame_type, frame.integration_ms, frame.coadd, frame.filename) == \
        ("2024-05-01T120004", "Dark", 150, 10, name)
    assert frame.time == dt.datetime(2024, 5, 1, 12, 0, 4, tzinfo=dt.timezone.utc)
    assert np.array_equal(frame.wavelengths, spectrum[0]) and np.array_equal(frame.counts, spectrum[1])
    flat = DataMeta("spectrum", name, "SPC", (4096,), "<f8", "2024-05-01T12:00:04+00:00", "Dark")
    with pytest.raises(ValueError, match="not a \\(2, N\\) array"):
        decode_data(Data(flat, spectrum.astype("<f8").tobytes()))


def test_validation_before_sending():
    from pycam.gui.forms import validate_command

    assert validate_command("CM1", "SSA", "1000") == 1000
    assert validate_command("SPC", "ATS", "0") is False
    assert validate_command("CM2", "TPB", "1257ppmm") == "1257ppmm"
    for device, key, raw in (("CM1", "SSA", "0"), ("CM1", "SSB", "1000"), ("SPC", "CAD", "21"),
                             ("CM1", "TPA", "Plume"), ("all", "FRC", "2"), ("CM1", "SMX", "x")):
        with pytest.raises(ValueError):
            validate_command(device, key, raw)


def test_normal_matches_the_processing_convention():
    from pycam.formats.geometry import PCSLine
    from pycam.gui.pcs_editor import normal_tip
    from pycam.processing.lines import _normal

    for line in (PCSLine(324, 60, 324, 426, "right"), PCSLine(100, 300, 500, 150, "left"),
                 PCSLine(10, 10, 200, 220, "left"), PCSLine(400, 50, 100, 60, "right")):
        (mx, my), (tx, ty) = normal_tip(line, 1.0)
        assert np.allclose((tx - mx, ty - my), _normal(line), atol=1e-9)


def test_nice_limits():
    from pycam.gui.plots import nice_limits

    lo, hi = nice_limits(0.013, 0.287)
    assert lo <= 0.013 and hi >= 0.287 and (hi - lo) <= 0.5
    assert nice_limits(5.0, 5.0)[1] > 5.0
    assert nice_limits(float("nan"), 1.0) == (0.0, 1.0)


def test_address_editor_validates(tmp_path):
    from pycam.config import ConfigError, generate_secret, validate
    from pycam.gui.dialogs import config_with_address

    config = validate({"network": {"secret": generate_secret()},
                       "storage": {"data_dir": str(tmp_path)}}, tmp_path / "s.toml")
    changed = config_with_address(config, "127.0.0.1", "23456")
    assert changed["network"]["client_port"] == 23456 and changed["network"]["secret"] == config["network"]["secret"]
    for host, port in (("127.0.0.1", "0"), ("127.0.0.1", "abc"), ("bad host", "1234"),
                       ("127.0.0.1", str(config["network"]["device_port"]))):
        with pytest.raises(ConfigError):
            config_with_address(config, host, port)


def test_schedule_rules():
    from pycam.gui.schedule_view import validate_schedule

    good = {"enabled": True, "start_time": "06:00", "stop_time": "18:00", "dark_time": "17:30",
            "power_on_lead_min": "5", "power_off_lag_min": "10"}
    assert validate_schedule(good)["power_on_lead_min"] == 5
    for change in ({"stop_time": "05:00"}, {"dark_time": "19:00"}, {"start_time": "6:61"},
                   {"power_on_lead_min": "500"}, {"start_time": "00:02", "power_on_lead_min": "5"}):
        with pytest.raises(ValueError):
            validate_schedule({**good, **change})
