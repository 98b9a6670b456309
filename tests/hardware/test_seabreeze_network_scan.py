"""seabreeze on a Pi: pyseabreeze's IPv4 multicast discovery raises ``OSError: [Errno 19] No such
device`` there (seabreeze before 2.11; PyCam patches the scan out).  The driver enumerates USB
only, so it never runs that scan and finds the USB spectrometer anyway.

pyseabreeze calls modelled (python-seabreeze ``src/seabreeze/pyseabreeze/api.py``, ``transport.py``):
``SeaBreezeAPI.list_devices`` = ``USBTransport.list_devices(**kw)`` (handles -> one device object
each via ``api._seabreeze_device_factory``, opened/closed to read the serial,
``USBTransportDeviceInUse`` skipped) followed by ``IPv4Transport.list_devices(**kw)``.
"""
from __future__ import annotations

import datetime as dt
import errno

import pytest

from pycam.drivers.base import DriverError, DriverUnavailable
from pycam.drivers.seabreeze_spectrometer import SeabreezeSpectrometer

WHEN = dt.datetime(2024, 5, 1, 12, 0, 4, tzinfo=dt.timezone.utc)
ENODEV = OSError(errno.ENODEV, "No such device")


def make(cfg, **kw):
    return SeabreezeSpectrometer(cfg, clock=lambda: WHEN + dt.timedelta(seconds=1), **kw)


def test_the_fake_reproduces_the_pi_quirk(fake_seabreeze):
    import seabreeze.spectrometers as sbs

    fake_seabreeze.plug("FLMS00001")
    fake_seabreeze.NETWORK_SCAN_ERROR = ENODEV
    with pytest.raises(OSError) as info:
        sbs.list_devices()                      # what PyCam's from_first_available path hits
    assert info.value.errno == 19
    with pytest.raises(OSError):
        sbs.Spectrometer.from_serial_number("FLMS00001")
    fake_seabreeze.NETWORK_SCAN_WARNS = True   # seabreeze 2.11: a warning, then the USB devices
    with pytest.warns(UserWarning, match="Skipping IPv4 discovery"):
        assert [d.serial_number for d in sbs.list_devices()] == ["FLMS00001"]


@pytest.mark.parametrize("serial", ["", "FLMS00002"])
def test_driver_finds_usb_spectrometer_while_network_scan_fails(hw_config, fake_seabreeze, serial):
    fake_seabreeze.plug("FLMS00001")
    fake_seabreeze.plug("FLMS00002")
    fake_seabreeze.IN_USE_ELSEWHERE.add("FLMS00001" if serial else "")
    fake_seabreeze.NETWORK_SCAN_ERROR = ENODEV
    cfg = hw_config({"hardware": {"spectrometer_serial": serial}, "spectrometer": {"integration_ms": 100}})
    with make(cfg) as spec:
        frame = spec.capture(WHEN)
        assert frame.counts.shape == (2048,) and frame.counts.max() > 1500.0
        assert spec.limits.pixels == 2048
    expected = "FLMS00002" if serial else "FLMS00001"
    assert fake_seabreeze.READS == [(expected, 100_000)]
    assert fake_seabreeze.NETWORK_SCANS[0] == 0     # the multicast scan was never run


def test_replug_while_network_scan_fails(hw_config, fake_seabreeze):
    fake_seabreeze.plug("FLMS00003")
    fake_seabreeze.NETWORK_SCAN_ERROR = ENODEV
    now = [0.0]
    spec = make(hw_config({"hardware": {"reopen_interval_s": 0.1}}), monotonic=lambda: now[0])
    events = []
    spec.event_listeners.append(lambda kind, **f: events.append(kind))
    spec.open()
    fake_seabreeze.unplug("FLMS00003")
    with pytest.raises(DriverError, match="lost"):
        spec.capture(WHEN)
    fake_seabreeze.replug("FLMS00003")
    now[0] = 1.0
    assert spec.capture(WHEN).counts.shape == (2048,)
    assert events == ["spectrometer_lost", "spectrometer_reopened"]
    assert fake_seabreeze.NETWORK_SCANS[0] == 0
    spec.close()


def test_backend_without_usb_only_listing_reports_the_failed_scan(hw_config, fake_seabreeze, monkeypatch):
    """A backend layout the driver does not know: it falls back to list_devices(), and a scan
    failure there is a clear DriverUnavailable (retried like an unplugged device), not a crash."""
    monkeypatch.setattr(fake_seabreeze, "transport", None)
    fake_seabreeze.plug("FLMS00004")
    fake_seabreeze.NETWORK_SCAN_ERROR = ENODEV
    with pytest.raises(DriverUnavailable, match=r"device scan failed: \[Errno 19\] No such device"):
        make(hw_config()).open()


def test_real_pyseabreeze_never_runs_its_network_scan(hw_config, monkeypatch):
    """The installed pyseabreeze (no USB spectrometer here) with its IPv4 scan made to fail like
    on a Pi: the driver reports 'no spectrometer found', never the scan's OSError."""
    pytest.importorskip("usb", reason="pyusb (needed by the pyseabreeze backend) is not installed here")
    import seabreeze.pyseabreeze as pyseabreeze
    import seabreeze.spectrometers as sbs
    from seabreeze.pyseabreeze import transport

    descriptor = sbs.Spectrometer.__dict__["_backend"]
    monkeypatch.setattr(descriptor, "_backend", pyseabreeze)
    monkeypatch.setattr(pyseabreeze, "_api_kwargs", {}, raising=False)
    monkeypatch.delattr(sbs.list_devices, "_api", raising=False)
    calls = []

    def failing_scan(cls, **kwargs):
        calls.append(kwargs)
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(transport.IPv4Transport, "list_devices", classmethod(failing_scan))
    with pytest.raises(DriverUnavailable, match="no spectrometer found"):
        SeabreezeSpectrometer(hw_config()).open()
    assert calls == []
    with pytest.raises(OSError):          # while the library's own listing does hit it
        sbs.list_devices()
    assert len(calls) == 1
