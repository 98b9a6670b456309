"""Typed station events: one declaration, checked on both sides."""
from __future__ import annotations

import pytest

from pycam.protocol import events
from pycam.protocol.messages import Event, decode, encode_bytes
from pycam.protocol.frames import FrameDecoder


def _roundtrip(message: Event) -> Event:
    decoder = FrameDecoder(1 << 20)
    decoder.feed(encode_bytes(message))
    return decode(decoder.next_frame())


def test_acquisition_event_names_the_field_the_gui_reads():
    wire = _roundtrip(events.Acquisition(acquiring=True, devices=("CM1", "CM2")).as_event("master", "t"))
    assert wire.fields == {"acquiring": True, "devices": ["CM1", "CM2"], "reason": ""}
    typed = events.parse(wire)
    assert typed == events.Acquisition(acquiring=True, devices=("CM1", "CM2"))


def test_settings_event_fields_are_the_settings():
    ev = events.Settings({"SSA": 1000, "ATA": True})
    assert ev.fields() == {"SSA": 1000, "ATA": True}
    assert events.parse(ev.as_event("CM1")).values["SSA"] == 1000


@pytest.mark.parametrize("name, fields, field", [
    ("acquisition", {}, "acquiring"),
    ("acquisition", {"acquiring": "yes"}, "acquiring"),
    ("exposure", {"key": "SSA", "value": 1.5, "saturation": 0.8}, "value"),
    ("health", {"uptime_s": 1.0, "spool_backlog": True}, "spool_backlog"),
    ("storage", {"state": "full", "duration_s": float("inf")}, "duration_s"),
    ("routed", {"request_id": 1, "session": "s", "key": "STC", "targets": [1]}, "targets"),
])
def test_bad_fields_are_named(name, fields, field):
    with pytest.raises(events.EventFieldError) as info:
        events.from_fields(name, fields)
    assert info.value.field == field and name in str(info.value)


def test_build_refuses_undeclared_names_and_fields_parse_ignores_new_fields():
    with pytest.raises(events.EventFieldError, match="unknown event name"):
        events.build("acquisition_started", devices=[])
    with pytest.raises(events.EventFieldError, match="running"):
        events.build("acquisition", running=True)
    assert events.parse(Event("acquisition", "CM1", {"acquiring": False, "later": 1})).acquiring is False
    assert events.parse(Event("something_new", "CM1", {})) is None
    assert events.parse_quietly("acquisition", {"running": True}) is None


def test_clock_offset_is_ntp_style():
    # device clock 120 ms behind the master, 10 ms each way, 2 ms in the master
    t0 = 1000.0
    t1 = t0 + 0.010 + 0.120
    t2 = t1 + 0.002
    t3 = t2 - 0.120 + 0.010
    offset, rtt = events.clock_offset(t0, t1, t2, t3)
    assert offset == pytest.approx(0.120) and rtt == pytest.approx(0.020)


def test_every_declared_event_round_trips_with_its_defaults():
    samples = {
        "acquisition": {"acquiring": True}, "settings": {"SSA": 1}, "exposure": {"key": "SSS", "value": 5,
                                                                                  "saturation": 0.5},
        "file_stored": {"filename": "f", "path": "p", "data_type": "image", "frame_type": "Plume"},
        "device_connected": {"device": "CM1"}, "device_disconnected": {"device": "CM1"},
        "status": {"level": "info", "message": "m"}, "progress": {"task": "dark_set"}, "DFC": {}, "DFS": {},
        "routed": {"request_id": 1, "session": "s", "key": "STC", "targets": ["CM1"]},
        "watchdog": {"action": "paused"}, "schedule": {"action": "start"}, "disk": {"action": "low", "free_mb": 3},
        "storage": {"state": "ok"}, "runtime_config": {"state": "applied"}, "config_reload": {"state": "error"},
        "health": {"uptime_s": 1.0, "spool_backlog": 0}, "clock_probe": {"t0": 1.0},
        "clock_reply": {"t0": 1.0, "t1": 2.0, "t2": 3.0},
        "sensor_skew": {"time": "2026-03-15T120000", "skew_ms": 9.5, "threshold_ms": 5.0, "camera_index_on": 0,
                        "camera_index_off": 1},
    }
    assert set(samples) == set(events.EVENT_TYPES)
    for name, fields in samples.items():
        typed = events.build(name, **fields)
        assert events.parse(_roundtrip(typed.as_event("CM1"))) == typed


def test_schedule_and_gain_commands_are_checked():
    from pycam.protocol.commands import parse_value, route
    from pycam.protocol.errors import CommandValueError

    good = {"enabled": True, "start_time": "06:00", "stop_time": "18:00", "dark_time": "17:30",
            "power_on_lead_min": 5, "power_off_lag_min": 10}
    assert parse_value("SCH", good) == good
    assert route("SCH", "master", ()) == ["master"]
    for bad, reason in ((dict(good, stop_time="05:00"), "after start_time"),
                        (dict(good, dark_time="19:00"), "inside"),
                        (dict(good, start_time="6:00"), "HH:MM"),
                        ({k: v for k, v in good.items() if k != "enabled"}, "'enabled' missing"),
                        (dict(good, colour="red"), "unknown schedule key"),
                        ("06:00-18:00", "expected an object")):
        with pytest.raises(CommandValueError, match=reason):
            parse_value("SCH", bad)
    assert parse_value("AGA", "2.5") == 2.5
    with pytest.raises(CommandValueError, match="out of range"):
        parse_value("AGB", 17)
    with pytest.raises(CommandValueError, match="not handled by CM2"):
        route("AGA", "CM2", ("CM2",))
