"""Schedule, Witty Pi file, watchdog, disk manager and two-Pi power, each alone with callbacks."""
from __future__ import annotations

import datetime as dt

import pytest

from pycam.config import ConfigError
from pycam.schedule import daily_times, witty_pi_schedule
from pycam.station.disk_manager import LEDGER_NAME, ConfirmedFiles, DiskManager
from pycam.station.power import PowerError, RPiGpio, SecondPiPower
from pycam.station.housekeeping import StationSchedule
from pycam.station.watchdog import AcquisitionWatchdog

UTC = dt.timezone.utc


def section(**kw):
    base = {"start_time": "00:30", "stop_time": "09:00", "dark_time": "08:40", "power_on_lead_min": 5,
            "power_off_lag_min": 10, "witty_pi_file": None}
    base.update(kw)
    return base


# -- schedule ------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,key", [
    ({"stop_time": "00:30"}, "stop_time"), ({"stop_time": "00:10"}, "stop_time"),
    ({"dark_time": "09:00"}, "dark_time"), ({"dark_time": "00:00"}, "dark_time"),
])
def test_schedule_validation_names_key(kw, key):
    with pytest.raises(ConfigError, match=rf"\[schedule\] {key}"):
        daily_times(section(**kw))


def test_schedule_config_defaults_are_valid(hw_config):
    daily_times(hw_config()["schedule"])


class Calls:
    def __init__(self):
        self.log = []

    def __getattr__(self, name):
        return lambda: self.log.append(name)


def make_schedule(now, calls, events):
    return StationSchedule(section(), start_acquisition=calls.start, stop_acquisition=calls.stop,
                           start_dark_set=calls.dark, publish_event=lambda k, **f: events.append((k, f)),
                           clock=lambda: now[0])


def test_schedule_fires_in_order_every_day():
    now = [dt.datetime(2024, 5, 1, 0, 0, tzinfo=UTC)]
    calls, events = Calls(), []
    sched = make_schedule(now, calls, events)
    assert not sched.catch_up(now[0])
    assert sched.run_pending(now[0]) == []
    for hhmm, expect in (((0, 30), ["start"]), ((8, 39), []), ((8, 40), ["dark"]), ((9, 0, 30), ["stop"]),
                         ((23, 59), [])):
        now[0] = dt.datetime(2024, 5, 1, *hhmm, tzinfo=UTC)
        assert sched.run_pending(now[0]) == expect
    now[0] = dt.datetime(2024, 5, 2, 0, 31, tzinfo=UTC)
    assert sched.run_pending(now[0]) == ["start"]
    assert calls.log == ["start", "dark", "stop", "start"]
    assert [e[1]["action"] for e in events] == ["start", "dark", "stop", "start"]
    assert sched.next_action(now[0]) == (dt.datetime(2024, 5, 2, 8, 40, tzinfo=UTC), "dark")


def test_schedule_late_loop_never_skips_stop():
    now = [dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC)]
    calls, events = Calls(), []
    sched = make_schedule(now, calls, events)
    assert sched.catch_up(now[0])                     # rebooted inside the window: start now
    now[0] = dt.datetime(2024, 5, 1, 11, 0, tzinfo=UTC)  # asleep past dark and stop
    assert sched.run_pending(now[0]) == ["dark", "stop"]
    assert calls.log == ["start", "dark", "stop"]


def test_schedule_thread_and_witty_file(tmp_path):
    calls, events = Calls(), []
    fixed = dt.datetime(2024, 5, 1, 8, 40, 10, tzinfo=UTC)  # booted inside the window, at dark time
    sched = StationSchedule(section(witty_pi_file=str(tmp_path / "schedule.wpi")),
                            start_acquisition=calls.start, stop_acquisition=calls.stop,
                            start_dark_set=calls.dark, publish_event=lambda k, **f: events.append(k),
                            clock=lambda: fixed, max_wait_s=0.05)
    sched.start()
    try:
        for _ in range(500):
            if "dark" in calls.log:
                break
            __import__("time").sleep(0.01)
    finally:
        sched.stop()
    assert calls.log == ["start", "dark"]
    assert (tmp_path / "schedule.wpi").read_text().startswith("# PyCam Witty Pi schedule")


def test_witty_pi_schedule_text():
    text = witty_pi_schedule(section(), dt.date(2024, 5, 1))
    lines = [l for l in text.splitlines() if not l.startswith("#")]
    assert lines == ["BEGIN 2024-05-01 00:25:00", "END   2099-12-31 23:59:59", "ON    H8 M45", "OFF   H15 M15"]
    early = witty_pi_schedule(section(start_time="00:02", power_on_lead_min=5), dt.date(2024, 5, 1))
    assert "BEGIN 2024-04-30 23:57:00" in early
    with pytest.raises(ConfigError, match="power_off_lag_min"):
        witty_pi_schedule(section(start_time="00:00", stop_time="23:59", dark_time="01:00"), dt.date(2024, 5, 1))


# -- watchdog ------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make_watchdog(clock, acquiring, calls, events, **kw):
    return AcquisitionWatchdog(timeout_s=150, check_s=30, is_acquiring=lambda: acquiring[0],
                               start_acquisition=calls.start, stop_acquisition=calls.stop,
                               publish_event=lambda k, **f: events.append((k, f)), clock=clock, **kw)


def test_watchdog_restarts_silent_device_and_reports():
    clock, acquiring, calls, events = Clock(), [True], Calls(), []
    wd = make_watchdog(clock, acquiring, calls, events, expected_devices=lambda: ["CM1", "CM2", "SPC"])
    assert wd.check() == []                       # arms
    for t in range(0, 140, 10):
        clock.t = 100 + t
        for dev in ("CM1", "CM2", "SPC"):
            wd.file_stored("x", dev)
    assert wd.check() == []
    clock.t = 300
    for dev in ("CM1", "SPC"):
        wd.file_stored("x", dev)
    assert wd.check() == []                       # CM2 silent 70 s: fine
    clock.t = 380
    for dev in ("CM1", "SPC"):
        wd.file_stored("x", dev)
    assert wd.check() == ["CM2"]
    assert calls.log == ["stop", "start"]
    assert events[-1] == ("watchdog", {"action": "restart", "state": "done", "silent": ["CM2"],
                                        "timeout_s": 150.0, "attempt": 1})
    assert wd.check() == []                       # fresh grace period after the restart


def test_watchdog_idle_when_not_acquiring_and_escalates():
    clock, acquiring, calls, events = Clock(), [False], Calls(), []
    escalations = []
    wd = make_watchdog(clock, acquiring, calls, events, escalate=lambda: escalations.append(1), max_restarts=2)
    clock.t = 10_000
    assert wd.check() == [] and calls.log == []
    acquiring[0] = True
    wd.check()
    for _ in range(3):
        clock.t += 200
        assert wd.check() == ["all devices"]
    assert escalations == [1]
    assert [e[1]["action"] for e in events] == ["restart", "restart", "escalate", "restart"]


# -- disk manager --------------------------------------------------------------------------
def test_disk_manager_deletes_only_confirmed_oldest_first(tmp_path):
    root = tmp_path / "data"
    day = root / "2024-05-01" / "Seq_1"
    day.mkdir(parents=True)
    names = ["2024-05-01T120008_fltrA_1ag_999904ss_Plume.png", "2024-05-01T120000_fltrA_1ag_999904ss_Plume.png",
             "2024-05-01T120004_100ss_1coadd_Plume.npy", "2024-05-01T120012_fltrB_1ag_999904ss_Plume.png"]
    for n in names:
        (day / n).write_bytes(b"x" * 1000)
    unconfirmed = day / "2024-05-01T115900_fltrA_1ag_999904ss_Plume.png"  # the oldest, but not confirmed
    unconfirmed.write_bytes(b"x" * 1000)
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"x")
    ledger = ConfirmedFiles(root)
    for n in names:
        ledger.file_stored(day / n, "CM1")
    assert not ledger.add(outside)
    free = {"bytes": 0}

    def free_bytes(_):
        return free["bytes"]

    events = []
    dm = DiskManager(root, 1, ledger, free_bytes=free_bytes, publish_event=lambda k, **f: events.append(f))
    free["bytes"] = 2 * 2**20
    assert dm.check() == []                       # enough space: nothing deleted
    def counting_free(_):
        # each deletion "frees" half a MB
        return len([p for p in names if not (day / p).exists()]) * 2**19

    dm._free = counting_free
    deleted = dm.check()
    assert [p.name for p in deleted] == ["2024-05-01T120000_fltrA_1ag_999904ss_Plume.png",
                                         "2024-05-01T120004_100ss_1coadd_Plume.npy"]
    assert unconfirmed.exists() and outside.exists()
    assert events[0]["action"] == "deleted" and events[0]["count"] == 2
    # the ledger survives a restart and forgets deleted files
    again = ConfirmedFiles(root)
    assert sorted(p.name for p in again.paths()) == sorted(names[i] for i in (0, 3))
    assert (root / LEDGER_NAME).read_text().count("\n") == 2
    dm2 = DiskManager(root, 10, again, free_bytes=lambda _: 0, publish_event=lambda k, **f: events.append(f))
    assert len(dm2.check()) == 2 and unconfirmed.exists()
    assert events[-1]["action"] == "low"


# -- power ---------------------------------------------------------------------------------
def test_power_pulse_and_cycle():
    from helpers.hwfakes.fake_gpio import FakeGpio

    gpio = FakeGpio()
    slept = []
    power = SecondPiPower(gpio, 23, 0.5, sleep=slept.append, off_wait_s=20)
    power.pulse()
    assert [(e[0], e[1], e[2]) for e in gpio.log] == [("setup", 23, False), ("write", 23, True),
                                                       ("write", 23, False)]
    assert slept == [0.5] and gpio.released == [23]
    power.power_cycle()
    assert slept == [0.5, 0.5, 20, 0.5]
    assert [e[2] for e in gpio.log if e[0] == "write"] == [True, False] * 3


def test_power_failure_is_clear():
    class Broken:
        def setup_output(self, pin, initial):
            raise RuntimeError("No access to /dev/mem")

        def write(self, pin, level):
            pass

        def release(self, pin):
            pass

    with pytest.raises(PowerError, match="GPIO 23: cannot pulse: No access"):
        SecondPiPower(Broken(), 23, 0.1, sleep=lambda s: None).pulse()
    with pytest.raises(PowerError, match="RPi.GPIO not available"):
        RPiGpio()
