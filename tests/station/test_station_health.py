"""Health telemetry, offline events, manual mode, a restarted master, SCH/AGA commands."""
from __future__ import annotations

import time
import urllib.request

import pytest
from helpers.waiting import wait_for
from station_helpers import InProcessStation

from pycam.protocol import events
from pycam.protocol import messages as m
from pycam.station.launcher import write_station_config
from pycam.station.master import Master
from pycam.station.watchdog import AcquisitionWatchdog


@pytest.fixture
def fast_config(tmp_path):
    return write_station_config(tmp_path / "station.toml", data_dir=tmp_path / "data", spool_dir=tmp_path / "spool",
                                framerate=1.0, overrides={"health": {"heartbeat_s": 0.2}})


def _health(seen, device):
    return [events.parse(e) for e in list(seen)
            if isinstance(e, m.Event) and e.name == "health" and e.device == device
            and e.fields.get("clock_offset_ms") is not None]


def test_heartbeats_measure_clock_offset_and_reach_clients_and_prometheus(fast_config, caplog):
    from pycam.station.metrics import MetricsServer

    st = InProcessStation(fast_config)
    st.services["CM2"].health.clock = lambda: time.time() - 0.120   # camera B's clock is 120 ms slow
    metrics = MetricsServer(st.master, 0).start()
    try:
        st.wait_devices()
        seen = []
        st.client(on_message=seen.append)
        st.master.start_acquisition()
        b = wait_for(lambda: [h for h in _health(seen, "CM2") if h.last_frame_age_s is not None], 15,
                     what="camera B heartbeat with a frame")[-1]
        a = wait_for(lambda: _health(seen, "CM1"), 10, what="camera A heartbeat")[-1]
        assert b.clock_offset_ms == pytest.approx(120.0, abs=25.0), b
        assert abs(a.clock_offset_ms) < 25.0 and 0 <= a.clock_rtt_ms < 100
        assert b.acquiring and b.framerate == 1.0 and b.uptime_s > 0 and b.spool_backlog >= 0
        assert b.disk_free_mb is not None and b.disk_free_mb > 0
        assert not [e for e in seen if isinstance(e, m.Event) and e.name in ("clock_probe", "clock_reply")]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=5).read().decode()
        line = next(l for l in text.splitlines() if l.startswith('pycam_device_clock_offset_seconds{device="CM2"}'))
        assert float(line.split()[-1]) == pytest.approx(0.120, abs=0.025)
        assert 'pycam_device_connected{device="SPC"} 1.0' in text and "pycam_master_acquiring 1.0" in text
        clock_lines = [r.getMessage() for r in caplog.records if "off the master" in r.getMessage()]
        assert len(clock_lines) == 1 and clock_lines[0].startswith("CM2: clock +1"), clock_lines
    finally:
        metrics.stop()
        st.close()


def test_events_raised_while_offline_are_sent_on_reconnect(fast_config):
    st = InProcessStation(fast_config, devices=("CM1",), start_master=False)
    forwarded = []
    real = st.master._to_clients
    st.master._to_clients = lambda msg: (forwarded.append(msg), real(msg))
    try:
        service = st.services["CM1"]
        service.handle_command(m.Command(request_id=1, device="CM1", key="STC", value=True))
        service.link.send_typed(events.Status(level="warning", message="raised offline"))
        assert len(service.link.offline) == 2
        st.master.start()
        def sent():
            return [(e.name, e.fields.get("acquiring", e.fields.get("message"))) for e in list(forwarded)
                    if isinstance(e, m.Event) and e.device == "CM1" and e.name in ("acquisition", "status")]

        names = wait_for(lambda: len(sent()) >= 2 and sent(), 15, what="both offline events")
        assert names[:2] == [("acquisition", True), ("status", "raised offline")]
        assert len(service.link.offline) == 0
    finally:
        st.close()


def test_a_restarted_master_resumes_acquiring(fast_config):
    from pycam.config import load_config

    config = load_config(fast_config)
    first = Master(config, fsync=False)
    assert first.acquiring is False
    first.start_acquisition()
    second = Master(config, fsync=False)      # e.g. after a crash: a new process, same spool
    assert second.acquiring is True
    second.stop_acquisition()
    assert Master(config, fsync=False).acquiring is False


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_watchdog_skips_manual_mode_devices_and_pauses_while_disk_full():
    clock = _Clock()
    restarts, published = [], []
    manual = {"CM2"}
    paused = [None]
    dog = AcquisitionWatchdog(timeout_s=10, check_s=1, is_acquiring=lambda: True,
                              start_acquisition=lambda: restarts.append("start"), stop_acquisition=lambda: None,
                              publish_event=lambda kind, **f: published.append((kind, f.get("action"))),
                              expected_devices=lambda: ("CM1", "CM2"), manual_devices=lambda: manual,
                              paused=lambda: paused[0], clock=clock)
    dog.check()                       # arms
    for t in range(1, 30):
        clock.t = t
        dog.file_stored(None, "CM1")  # CM1 delivers, CM2 is in manual mode
        assert dog.check() == []
    paused[0] = "storage full: disk full"
    clock.t = 100                      # nobody delivers for a long time, but the disk is full
    assert dog.check() == [] and ("watchdog", "paused") in published
    paused[0] = None
    clock.t = 101
    assert dog.check() == [] and ("watchdog", "resumed") in published
    clock.t = 105
    assert dog.check() == []           # a full timeout of grace after the pause
    clock.t = 112
    manual.clear()
    assert dog.check() == ["CM1", "CM2"] and restarts == ["start"]


def test_schedule_and_gain_commands_reach_the_station(fast_config):
    from pycam.station.housekeeping import MasterHousekeeping

    st = InProcessStation(fast_config)
    hk = MasterHousekeeping(st.master, st.config).start()
    try:
        st.wait_devices()
        client = st.client()
        schedule = {"enabled": True, "start_time": "00:00", "stop_time": "23:58", "dark_time": "12:00",
                    "power_on_lead_min": 0, "power_off_lag_min": 1}
        assert client.request("master", "SCH", schedule).value == schedule
        assert hk.schedule is not None and hk.schedule.times.dark.hour == 12
        assert client.request("CM1", "AGA", 2.5).value == 2.5
        assert st.services["CM1"].driver.gain == 2.5
        from pycam.client import CommandFailed
        with pytest.raises(CommandFailed, match="dark_time"):
            client.request("master", "SCH", dict(schedule, dark_time="23:59"))
    finally:
        hk.stop()
        st.close()


def test_a_master_restarted_outside_the_daily_window_stops_the_resumed_acquisition(fast_config):
    import datetime as dt

    from pycam.config import load_config, validate
    from pycam.station.housekeeping import MasterHousekeeping

    hour = dt.datetime.now(dt.timezone.utc).hour
    start, stop, dark = ("13:00", "14:00", "13:30") if hour < 12 else ("01:00", "02:00", "01:30")
    base = load_config(fast_config)
    values = {s: dict(v) for s, v in base.values.items()}
    values["schedule"].update(enabled=True, start_time=start, stop_time=stop, dark_time=dark, witty_pi_file="")
    config = validate({s: {k: (str(v) if hasattr(v, "parent") else v) for k, v in sec.items() if v is not None}
                       for s, sec in values.items()})
    master = Master(config, fsync=False)
    master.acquiring = True                      # what a restarted master remembers
    hk = MasterHousekeeping(master, config).start()
    try:
        assert master.acquiring is False
    finally:
        hk.stop()


def test_metrics_port_in_the_config_serves_prometheus_text(tmp_path):
    from pycam.config import load_config
    from pycam.station.launcher import free_loopback_ports
    from pycam.station.housekeeping import MasterHousekeeping

    (port,) = free_loopback_ports(1)
    path = write_station_config(tmp_path / "s.toml", data_dir=tmp_path / "d", spool_dir=tmp_path / "s",
                                overrides={"master": {"metrics_port": port}})
    config = load_config(path)
    master = Master(config, fsync=False)
    hk = MasterHousekeeping(master, config).start()
    try:
        assert hk.metrics is not None and hk.metrics.port == port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "pycam_master_storage_full 0.0" in text and 'pycam_device_connected{device="CM1"} 0.0' in text
    finally:
        hk.stop()
