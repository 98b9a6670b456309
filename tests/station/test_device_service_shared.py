"""What the camera and spectrometer services share (pycam/station/device_service.py): the
saturation band check, the dark set and the capture path, once for each service."""
from __future__ import annotations

import pytest
from fake_drivers import FakeCamera, FakeSpectrometer

from pycam.config import load_config
from pycam.formats.names import parse_any
from pycam.protocol.errors import CommandValueError
from pycam.station.camera_service import CameraService
from pycam.station.spectrometer_service import SpectrometerService


@pytest.fixture(params=["camera", "spectrometer"])
def service(request, station_config):
    config = load_config(station_config)
    if request.param == "camera":
        made = CameraService(config, "off", FakeCamera(config, "off"))
    else:
        made = SpectrometerService(config, FakeSpectrometer(config))
    made.open_driver()
    yield made
    made.close_driver()


def test_saturation_band_bottom_stays_below_top(service):
    low, high = service.saturation_keys
    top = service.max_saturation
    with pytest.raises(CommandValueError, match=f"must be below {high}") as info:
        service.apply_setting(low, top)
    assert info.value.key == low
    with pytest.raises(CommandValueError, match=f"must be above {low}"):
        service.apply_setting(high, service.min_saturation)
    assert service.apply_setting(low, 0.5) == 0.5 and service.min_saturation == 0.5
    assert service.apply_setting(high, 0.95) == 0.95 and service.max_saturation == 0.95
    assert service.settings()[low] == 0.5 and service.settings()[high] == 0.95


def test_dark_set_takes_one_dark_per_exposure_then_restores_the_exposure(service):
    before = service.exposure
    names = service.run_dark_set()
    assert len(names) == len(service.dark_exposures()) == len(set(names))
    parsed = [parse_any(n) for n in names]
    assert all(p.frame_type == "Dark" for p in parsed)
    used = [p.exposure_us if service.kind == "camera" else p.integration_ms for p in parsed]
    restored = service.exposure
    assert restored == service.set_driver_exposure(before)   # what the driver gives for the exposure before
    assert used == [service.set_driver_exposure(v) for v in service.dark_exposures()]
    assert all((service.spool.directory / n).is_file() for n in names)
    assert service.last_frame is None   # darks are not the Plume frame auto exposure measures


def test_capture_names_the_frame_and_keeps_the_last_plume(service):
    name = service.capture(service_time(), "Plume")
    assert parse_any(name).frame_type == "Plume" and (service.spool.directory / name).is_file()
    assert service.last_frame is not None
    again = service.capture(service_time(), "Plume")   # same second: the next free second, never overwritten
    assert again != name and parse_any(again).time.timestamp() == parse_any(name).time.timestamp() + 1


def service_time():
    import datetime as dt

    return dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc)
