"""Auto exposure through the services with the simulator: after a step change in brightness
the saturation is back inside the target band within 3 frames; test frames change nothing."""
from __future__ import annotations

import datetime as dt

import pytest

from pycam.config import load_config
from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.drivers import exposure
from pycam.station.camera_service import CameraService
from pycam.station.spectrometer_service import SpectrometerService

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def camera_saturation(service) -> float:
    return exposure.camera_saturation(service.last_pixels, service.saturation_pixels, service.saturation_rows)


def frames_until_in_band(service, saturation, start: int, limit: int = 6) -> int:
    for i in range(limit):
        service.capture(T0 + dt.timedelta(seconds=start + i), "Plume")
        if service.min_saturation <= saturation(service) <= service.max_saturation:
            return i   # frames taken before this one needed adjusting
        service.after_continuous_frame()
    return limit


@pytest.fixture
def camera(station_config):
    service = CameraService(load_config(station_config), "on", SimCamera(load_config(station_config), "on"))
    service.open_driver()
    yield service
    service.close_driver()


@pytest.mark.slow
@pytest.mark.parametrize("step", [4.0, 0.25, 10.0])
def test_camera_converges_within_three_frames_after_a_brightness_step(camera, step):
    frames_until_in_band(camera, camera_saturation, 0, limit=10)          # settle first
    assert camera.min_saturation <= camera_saturation(camera) <= camera.max_saturation
    camera.driver.brightness *= step
    assert frames_until_in_band(camera, camera_saturation, 20) <= 3


@pytest.mark.slow
def test_test_frames_do_not_move_the_exposure(camera):
    frames_until_in_band(camera, camera_saturation, 0, limit=10)
    shutter = camera.shutter_us
    camera.driver.brightness *= 4
    for i in range(3):
        camera.capture(T0 + dt.timedelta(seconds=40 + i), "Test")
    assert camera.shutter_us == shutter


def test_spectrometer_converges_within_three_spectra(station_config):
    config = load_config(station_config)
    service = SpectrometerService(config, SimSpectrometer(config))
    service.open_driver()

    def saturation(s):
        f = s.last_frame
        return exposure.spectrometer_saturation(f.wavelengths, f.counts, s.wavelength_min, s.wavelength_max,
                                                s.saturation_pixels)
    try:
        frames_until_in_band(service, saturation, 0, limit=10)
        service.driver.brightness *= 4
        assert frames_until_in_band(service, saturation, 20) <= 3
    finally:
        service.close_driver()
