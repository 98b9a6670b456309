"""Sensor profiles: an IMX477 (HQ camera, 12-bit, black level 256 DN) and an OV5647 (10-bit) looking
at the same scene through the same plume give the same AA once the dark (which carries the black
level) is subtracted; nothing between the raw buffer and the AA assumes 10 bits.

Frames come from the fake picamera2 in its Pi 5 mode (unpacked raw delivered left-aligned as
``S<bayer>16``) through the real Picamera2 driver, then the processing's DarkLibrary,
ClearSky and AbsorbanceModel (clear-sky background, bg_mode 99: AA = tau_A - tau_B).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from pycam.config import ConfigError
from pycam.drivers.picamera2_camera import Picamera2Camera
from pycam.formats.sensors import PROFILES, SensorProfileError, sensor_profile
from pycam.processing.absorbance import AbsorbanceModel, ClearSky
from pycam.processing.corrections import DarkLibrary

WHEN = dt.datetime(2025, 6, 1, 9, 0, 0, tzinfo=dt.timezone.utc)
TAU_ON, TAU_OFF = 0.30, 0.05          # the plume's optical depth in each band
DISK = (0.5, 0.5, 0.22)               # plume disk: centre x, y and radius as fractions of the height


def past_clock():
    return WHEN + dt.timedelta(seconds=1)


def disk_mask(shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, r = DISK[0] * w, DISK[1] * h, DISK[2] * h * scale
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def observe(fake, hw_config, model: str, *, subtract_dark: bool = True) -> dict:
    """Dark, clear-sky and plume frames of both bands on a Pi 5 with two ``model`` cameras -> AA."""
    fake.reset()
    fake.PLATFORM, fake.ATTACHED = "pisp", 2
    fake.MODELS[:] = [model, model]
    cfg = hw_config({"hardware": {"sensor": model}, "camera": {"shutter_us": 100_000, "binning": 0}})
    cams = {band: Picamera2Camera(cfg, band, camera_index=i, clock=past_clock) for i, band in enumerate(("on", "off"))}
    try:
        for cam in cams.values():
            cam.open()

        def shot():
            return {band: cam.capture(WHEN) for band, cam in cams.items()}

        fake.LENS_CAP.update({0, 1})
        dark = shot()
        fake.LENS_CAP.clear()
        clear = shot()
        w, h = fake.sensor(model)["size"]
        inside = disk_mask((h, w)).astype(np.float32)
        fake.TRANSMISSION[0] = np.exp(-TAU_ON * inside)
        fake.TRANSMISSION[1] = np.exp(-TAU_OFF * inside)
        plume = shot()
    finally:
        for cam in cams.values():
            cam.close()
    exp = {band: plume[band].exposure_us for band in cams}
    darks = None
    if subtract_dark:
        darks = DarkLibrary()
        for band in cams:
            darks.add(band, dark[band].exposure_us, dark[band].pixels)
    shape = plume["on"].pixels.shape
    sky = ClearSky.from_raw(clear["on"].pixels, clear["off"].pixels, exp["on"], exp["off"], darks)
    aa = AbsorbanceModel(shape, bg_mode=99, darks=darks, clear=sky, use_vign_corr=False).compute(
        plume["on"].pixels, plume["off"].pixels, exp["on"], exp["off"]).aa
    return {"aa": aa, "shape": shape, "dark": dark["on"].pixels, "plume": plume["on"].pixels,
            "limits": cams["on"].limits}


def region_means(result: dict) -> tuple[float, float]:
    aa = result["aa"]
    inner = disk_mask(result["shape"], 0.8)
    outer = ~disk_mask(result["shape"], 1.2)
    return float(aa[inner].mean()), float(aa[outer].mean())


@pytest.mark.slow
def test_imx477_with_black_level_gives_the_ov5647_aa(hw_config, fake_picamera2):
    ov = observe(fake_picamera2, hw_config, "ov5647")
    hq = observe(fake_picamera2, hw_config, "imx477")
    # the frames really differ: 12-bit values above 1023 on a 256 DN pedestal, other binned size
    assert ov["shape"] == (486, 648) and hq["shape"] == (760, 1014)
    assert ov["limits"].max_dn == 1023 and hq["limits"].max_dn == 4095
    assert hq["plume"].max() > 1023 >= ov["plume"].max()
    assert abs(float(hq["dark"].mean()) - 256.0) < 2.0 and abs(float(ov["dark"].mean()) - 16.0) < 2.0
    ov_in, ov_out = region_means(ov)
    hq_in, hq_out = region_means(hq)
    assert ov_in == pytest.approx(TAU_ON - TAU_OFF, abs=0.01)
    assert hq_in == pytest.approx(ov_in, abs=0.005)
    assert abs(ov_out) < 0.005 and abs(hq_out) < 0.005


@pytest.mark.slow
def test_without_dark_subtraction_the_black_level_biases_the_aa(hw_config, fake_picamera2):
    """The check above can fail: leaving the IMX477's 256 DN in dilutes the plume's AA."""
    hq_in, _ = region_means(observe(fake_picamera2, hw_config, "imx477", subtract_dark=False))
    assert hq_in < TAU_ON - TAU_OFF - 0.02


def test_camera_model_must_match_the_configured_sensor(hw_config, fake_picamera2):
    from pycam.drivers.base import DriverError

    fake_picamera2.MODELS[:] = ["imx477"]
    with pytest.raises(DriverError, match="camera 0 is a imx477, but \\[hardware\\] sensor is 'ov5647'"):
        Picamera2Camera(hw_config(), "on", clock=past_clock).open()


def test_profiles_and_their_config_key(hw_config):
    ov, hq, gs = (sensor_profile(n) for n in ("OV5647", "imx477", "imx296"))
    assert (ov.bit_depth, ov.binned_shape, ov.binned_pixel_size_m) == (10, (486, 648), pytest.approx(5.6e-6))
    assert (hq.bit_depth, hq.black_level_dn, hq.max_dn, hq.raw_format) == (12, 256, 4095, "SRGGB12")
    assert gs.global_shutter and gs.external_trigger and gs.binned_shape == (544, 728)
    assert ov.pixel_pitch_m(648) == pytest.approx(5.6e-6) and ov.pixel_pitch_m(2592) == pytest.approx(1.4e-6)
    assert hq.pixel_pitch_m(1014) == pytest.approx(6.2e-6)
    with pytest.raises(SensorProfileError, match="unknown sensor 'imx219'.*ov5647, imx477, imx296"):
        sensor_profile("imx219")
    with pytest.raises(ConfigError, match=r"\[hardware\] sensor"):
        hw_config({"hardware": {"sensor": "imx219"}})
    with pytest.raises(ConfigError, match=r"\[hardware\] raw_bit_depth"):
        hw_config({"hardware": {"raw_bit_depth": 4}})
    assert set(PROFILES) == {"ov5647", "imx477", "imx296"}


def test_processing_takes_pixel_pitch_from_the_sensor_profile():
    import math

    from pycam.processing.plume_geometry import MeasurementGeometry
    from pycam.processing.settings import default_settings

    base = default_settings().replace(plume_distance_m=5000.0)
    ov = MeasurementGeometry.from_settings(base, (486, 648))
    assert ov.pix_size_m == pytest.approx(5.6e-6) and ov.focal_length_m == pytest.approx(7.277e-3, rel=1e-3)
    assert MeasurementGeometry.from_settings(base, (1944, 2592)).pix_size_m == pytest.approx(1.4e-6)
    hq_settings = base.replace(sensor="imx477")
    hq = MeasurementGeometry.from_settings(hq_settings, (760, 1014))
    assert hq.pix_size_m == pytest.approx(6.2e-6)           # not 5.6 um * 648 / 1014 = 3.58 um
    width = 4056 * 1.55e-6
    assert hq.focal_length_m == pytest.approx(width / 2 / math.tan(math.radians(28.0) / 2))
    # the same field of view: a pixel's footprint scales with the fraction of the width it covers
    assert hq.footprint_centre() * 1014 == pytest.approx(ov.footprint_centre() * 648, rel=1e-9)
