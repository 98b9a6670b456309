"""seabreeze driver: the real ``seabreeze.spectrometers`` on a fake backend (``helpers/hwfakes/fake_seabreeze.py``).

Library calls relied on (python-seabreeze 2.x, ``seabreeze/spectrometers.py``):
``list_devices()``, ``Spectrometer.from_serial_number(serial)``, ``Spectrometer.from_first_available()``
(``SeaBreezeError`` when nothing is attached), ``integration_time_micros_limits`` (accepted range
``min <= t < max``), ``integration_time_micros(us)``, ``wavelengths()``,
``intensities(correct_dark_counts=, correct_nonlinearity=)``, ``max_intensity``, ``pixels``,
``serial_number``, ``f.spectrometer.get_electric_dark_pixel_indices()``, ``close()``.  Below them the
backend calls ``get_intensities``, ``set_integration_time_micros``, ... are the fake's.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.drivers.base import DriverError, DriverUnavailable
from pycam.drivers.registry import spectrometer_driver_class
from pycam.drivers.seabreeze_spectrometer import SeabreezeSpectrometer

WHEN = dt.datetime(2024, 5, 1, 12, 0, 4, 250000, tzinfo=dt.timezone.utc)


def past_clock():
    return WHEN + dt.timedelta(seconds=1)


class Monotonic:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(cfg, **kw):
    return SeabreezeSpectrometer(cfg, clock=past_clock, **kw)


def test_registry_resolves_the_driver():
    assert spectrometer_driver_class("seabreeze") is SeabreezeSpectrometer


def test_real_library_without_device_is_clear(hw_config):
    """The installed seabreeze (real backend, no USB device here) gives a clear error."""
    with pytest.raises(DriverUnavailable, match="no spectrometer found"):
        SeabreezeSpectrometer(hw_config()).open()


def test_open_first_available_limits_and_wavelengths(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS12345")
    with make(hw_config({"spectrometer": {"integration_ms": 250}})) as spec:
        lim = spec.limits
        assert (lim.min_integration_ms, lim.max_integration_ms) == (1.0, 655349.0)
        assert lim.pixels == 2048 and lim.max_counts == 65535.0
        wl = spec.wavelengths()
        assert wl.shape == (2048,) and wl.dtype == np.float64
        np.testing.assert_allclose(wl, fake_seabreeze.wavelengths())
        assert spec.set_integration_time(0) == 1
        assert spec.set_integration_time(10**9) == 655349  # inside seabreeze's min <= t < max
        assert fake_seabreeze._bus["FLMS12345"].f.spectrometer._integration_us == 655349000


def test_open_by_serial_picks_that_device(hw_config, fake_seabreeze):
    fake_seabreeze.plug("AAA1", signal_per_s=1000.0)
    fake_seabreeze.plug("BBB2", signal_per_s=50000.0)
    with make(hw_config({"hardware": {"spectrometer_serial": "BBB2"}})) as spec:
        spec.capture(WHEN)
    assert fake_seabreeze.READS[-1][0] == "BBB2"
    with pytest.raises(DriverUnavailable, match="no spectrometer with serial ZZZ"):
        make(hw_config({"hardware": {"spectrometer_serial": "ZZZ"}})).open()


def test_coadds_are_the_mean(hw_config, fake_seabreeze, monkeypatch):
    fake_seabreeze.plug("FLMS1")
    reads = iter([np.full(2048, 100.0), np.full(2048, 200.0), np.full(2048, 600.0)])
    with make(hw_config({"spectrometer": {"integration_ms": 100}})) as spec:
        feature = fake_seabreeze._bus["FLMS1"].f.spectrometer
        monkeypatch.setattr(feature, "get_intensities", lambda: next(reads).copy())
        frame = spec.capture(WHEN, coadd=3)
    assert frame.coadd == 3 and frame.integration_ms == 100
    np.testing.assert_allclose(frame.counts, 300.0)
    assert frame.time == WHEN.replace(microsecond=0)
    assert frame.counts.shape == frame.wavelengths.shape == (2048,)


def test_integration_time_scales_signal(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS1")
    with make(hw_config()) as spec:
        spec.set_integration_time(100)
        short = spec.capture(WHEN, coadd=5).counts
        spec.set_integration_time(400)
        long = spec.capture(WHEN, coadd=5).counts
    bright = slice(1000, 1100)
    ratio = (long[bright] - 1500).mean() / (short[bright] - 1500).mean()
    assert 3.8 < ratio < 4.2
    assert [r[1] for r in fake_seabreeze.READS[-5:]] == [400000] * 5


def test_electric_dark_subtracts_dark_pixel_mean(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS1")
    with make(hw_config({"hardware": {"electric_dark": True}})) as spec:
        frame = spec.capture(WHEN, coadd=4)
    dark = frame.counts[6:21]
    assert abs(dark.mean()) < 5.0  # the ~1500-count electrical offset is gone
    with make(hw_config()) as spec:
        raw = spec.capture(WHEN, coadd=4)
    assert raw.counts[6:21].mean() == pytest.approx(1500.0, abs=5.0)


def test_dark_file_subtracted_when_integration_matches(hw_config, fake_seabreeze, tmp_path):
    fake_seabreeze.plug("FLMS1")
    dark = np.vstack([fake_seabreeze.wavelengths(), np.full(2048, 1500.0)])
    path = tmp_path / "2024-05-01T120000_100ss_1coadd_Dark.npy"
    np.save(path, dark)
    cfg = hw_config({"hardware": {"spectrometer_dark_file": str(path)}, "spectrometer": {"integration_ms": 100}})
    with make(cfg) as spec:
        matched = spec.capture(WHEN, coadd=4).counts
        spec.set_integration_time(200)
        unmatched = spec.capture(WHEN, coadd=4).counts
    assert abs(matched[6:21].mean()) < 5.0
    assert unmatched[6:21].mean() == pytest.approx(1500.0, abs=5.0)


def test_bad_dark_file_named(hw_config, fake_seabreeze, tmp_path):
    fake_seabreeze.plug("FLMS1")
    path = tmp_path / "2024-05-01T120000_100ss_1coadd_Dark.npy"
    np.save(path, np.zeros((2, 10)))
    with pytest.raises(DriverError, match="dark file .*shape"):
        make(hw_config({"hardware": {"spectrometer_dark_file": str(path)}})).open()
    assert not fake_seabreeze._bus["FLMS1"].is_open  # released after the failed open


def test_unplug_reported_then_reopened_with_same_settings(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS1")
    clock = Monotonic()
    events = []
    spec = make(hw_config({"hardware": {"reopen_interval_s": 2.0}}), monotonic=clock)
    spec.event_listeners.append(lambda kind, **f: events.append((kind, f)))
    spec.open()
    spec.set_integration_time(321)
    spec.capture(WHEN)
    fake_seabreeze.unplug("FLMS1")
    with pytest.raises(DriverError, match="FLMS1 lost"):
        spec.capture(WHEN)
    assert events[0][0] == "spectrometer_lost" and events[0][1]["serial"] == "FLMS1"
    assert spec.lost
    clock.now += 5
    with pytest.raises(DriverError, match="still unplugged"):
        spec.capture(WHEN)
    fake_seabreeze.replug("FLMS1")
    with pytest.raises(DriverError, match="retrying shortly"):  # rate-limited reopen
        spec.capture(WHEN)
    clock.now += 5
    frame = spec.capture(WHEN)
    assert [e[0] for e in events] == ["spectrometer_lost", "spectrometer_reopened"]
    assert frame.integration_ms == 321
    assert fake_seabreeze.READS[-1] == ("FLMS1", 321000)
    assert not spec.lost
    spec.close()


def test_replug_reopens_the_same_serial_not_another(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FIRST")
    clock = Monotonic()
    spec = make(hw_config({"hardware": {"reopen_interval_s": 0.1}}), monotonic=clock)
    spec.open()
    fake_seabreeze.unplug("FIRST")
    fake_seabreeze.plug("OTHER")
    with pytest.raises(DriverError):
        spec.capture(WHEN)
    clock.now += 1
    with pytest.raises(DriverError, match="FIRST is still unplugged"):
        spec.capture(WHEN)
    spec.close()


def test_waits_for_trigger_time(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS1")
    now = [WHEN - dt.timedelta(seconds=1.5)]

    def sleep(s):
        now[0] += dt.timedelta(seconds=s)

    with SeabreezeSpectrometer(hw_config(), clock=lambda: now[0], sleep=sleep) as spec:
        spec.capture(WHEN)
    assert now[0] >= WHEN


def test_runtime_control_specs(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS1")
    with make(hw_config({"spectrometer": {"integration_ms": 80}})) as spec:
        assert spec.control_specs() == {"IntegrationTime": {"min": 1, "max": 655349, "default": 80, "type": "int"}}
        assert spec.apply_controls({"IntegrationTime": 50}) == {"IntegrationTime": 50}


def test_usb_error_of_the_python_backend_counts_as_unplug(hw_config, fake_seabreeze, monkeypatch):
    """pyseabreeze raises pyusb's USBError (an OSError), not SeaBreezeError, when the cable goes."""
    fake_seabreeze.plug("FLMS1")
    events = []
    spec = make(hw_config())
    spec.event_listeners.append(lambda kind, **f: events.append(kind))
    spec.open()
    feature = fake_seabreeze._bus["FLMS1"].f.spectrometer

    def broken():
        raise OSError(19, "No such device (it may have been disconnected)")

    monkeypatch.setattr(feature, "get_intensities", broken)
    with pytest.raises(DriverError, match="lost: .*No such device"):
        spec.capture(WHEN)
    assert events == ["spectrometer_lost"] and spec.lost
