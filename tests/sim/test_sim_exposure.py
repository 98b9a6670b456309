"""Auto-exposure: pure functions, and convergence against the simulated camera/spectrometer."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.drivers.sim import SimCamera, SimSpectrometer
from pycam.drivers.exposure import (ExposureError, camera_saturation, next_camera_shutter,
                                    next_integration_time, proportional_exposure, spectrometer_saturation)

T0 = dt.datetime(2026, 11, 21, 9, 0, 0, tzinfo=dt.timezone.utc)


def test_camera_saturation_uses_brightest_pixels_of_selected_rows():
    frame = np.zeros((10, 10), np.uint16)
    frame[0, :3] = 1023          # top row: 3 bright pixels
    frame[9, :] = 500            # bottom row
    assert camera_saturation(frame, pixels=3, rows=5) == pytest.approx(1.0)
    assert camera_saturation(frame, pixels=3, rows=-5) == pytest.approx(1.0)
    assert camera_saturation(frame, pixels=10, rows=1) == pytest.approx(3 * 1023 / 10 / 1023)
    # rows counted from the bottom are excluded: frame[:-1] drops the bright bottom row
    frame2 = np.zeros((10, 10), np.uint16)
    frame2[9, :] = 800
    assert camera_saturation(frame2, pixels=5, rows=-1) == 0.0
    assert camera_saturation(frame2, pixels=5, rows=0) == pytest.approx(800 / 1023)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ExposureError, match="rows"):
        camera_saturation(np.ones((4, 4)), rows=-4)
    with pytest.raises(ExposureError, match="2-D"):
        camera_saturation(np.ones(4))
    with pytest.raises(ExposureError, match="no spectrometer pixels"):
        spectrometer_saturation(np.linspace(200, 250, 10), np.ones(10))
    with pytest.raises(ExposureError, match="limits"):
        proportional_exposure(10, 0.5, min_saturation=0.7, max_saturation=0.9, dark_fraction=0,
                              minimum=5, maximum=1, saturated=False)


def test_proportional_step_hits_band_centre_for_a_linear_sensor():
    # counts = dark + rate * t: measured 0.2 at t=100 with dark 0 -> 0.8 needs t=400
    value, action = proportional_exposure(100.0, 0.2, min_saturation=0.7, max_saturation=0.9, dark_fraction=0.0,
                                          minimum=1, maximum=1e6, saturated=False)
    assert value == pytest.approx(400.0) and action == "increase"
    value, action = proportional_exposure(100.0, 0.8, min_saturation=0.7, max_saturation=0.9, dark_fraction=0.0,
                                          minimum=1, maximum=1e6, saturated=False)
    assert (value, action) == (100.0, "keep")
    value, action = proportional_exposure(100.0, 1.0, min_saturation=0.7, max_saturation=0.9, dark_fraction=0.0,
                                          minimum=1, maximum=1e6, saturated=True)
    assert value == pytest.approx(25.0) and action == "saturated"
    value, _ = proportional_exposure(100.0, 0.01, min_saturation=0.7, max_saturation=0.9, dark_fraction=0.0,
                                     minimum=1, maximum=500, saturated=False)
    assert value == 500  # clipped to the limit


def _frames_to_converge(cam: SimCamera, factor: float) -> tuple[int, list[float]]:
    """Settle, apply a brightness step, return the number of frames until in band again."""
    when = T0
    limits = cam.limits
    history = []
    for i in range(8):
        frame = cam.capture(when + dt.timedelta(seconds=4 * i))
        d = next_camera_shutter(frame.pixels, frame.exposure_us, min_shutter_us=limits.min_shutter_us,
                                max_shutter_us=limits.max_shutter_us)
        cam.set_exposure(d.value)
    assert d.in_band, "did not settle before the step"
    cam.brightness *= factor
    for n in range(1, 10):
        frame = cam.capture(when + dt.timedelta(seconds=100 + 4 * n))
        d = next_camera_shutter(frame.pixels, frame.exposure_us, min_shutter_us=limits.min_shutter_us,
                                max_shutter_us=limits.max_shutter_us)
        history.append(d.saturation)
        if d.in_band:
            return n - 1, history   # frames taken after the step before one is in band
        cam.set_exposure(d.value)
    return 99, history


@pytest.mark.slow
@pytest.mark.parametrize("band", ["on", "off"])
@pytest.mark.parametrize("factor", [4.0, 0.25, 10.0, 0.1])
def test_camera_auto_exposure_converges_within_3_frames(scene, sim_config, band, factor):
    cam = SimCamera(sim_config, band, scene=scene)
    cam.open()
    cam.set_exposure(20_000)
    frames, history = _frames_to_converge(cam, factor)
    assert frames <= 3, f"needed {frames} frames: saturations {history}"
    if factor in (4.0, 0.25):
        assert frames <= 2


@pytest.mark.parametrize("factor", [4.0, 0.25])
def test_spectrometer_auto_integration_converges_within_3_spectra(scene, sim_config, factor):
    spec = SimSpectrometer(sim_config, scene=scene)
    spec.open()
    spec.set_integration_time(50)
    wl = spec.wavelengths()
    for i in range(5):
        s = spec.capture(T0 + dt.timedelta(seconds=i))
        d = next_integration_time(wl, s.counts, s.integration_ms)
        spec.set_integration_time(d.value)
    assert d.in_band
    spec.brightness *= factor
    for n in range(1, 6):
        s = spec.capture(T0 + dt.timedelta(seconds=10 + n))
        d = next_integration_time(wl, s.counts, s.integration_ms)
        if d.in_band:
            break
        spec.set_integration_time(d.value)
    assert n - 1 <= 3
