"""Picamera2 driver against the fake library (``helpers/hwfakes/fake_picamera2.py``).

Library calls relied on (picamera2, checked against raspberrypi/picamera2 ``picamera2.py`` and
``request.py``): ``Picamera2(camera_num)`` (``IndexError`` without a camera), ``sensor_resolution``,
``sensor_format``, ``camera_controls`` (``(min, max, default)``), ``create_still_configuration(main=,
raw={"format", "size"}, buffer_count=, controls=)``, ``configure``, ``camera_configuration()["raw"]``
(``format``, ``size``, ``stride``), ``set_controls`` (``AeEnable``, ``ExposureTime``,
``AnalogueGain``, ``FrameDurationLimits``), ``start``, ``capture_request(flush=True)``,
``request.get_metadata()`` (``ExposureTime``, ``AnalogueGain``), ``request.make_array("raw")``
(uint8 ``(rows, stride)``), ``request.release()``, ``stop``, ``close``.
"""
from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pytest

from pycam.drivers.base import DriverError, DriverUnavailable
from pycam.drivers.picamera2_camera import Picamera2Camera, bin_area, unpack_raw
from pycam.drivers.registry import camera_driver_class

WHEN = dt.datetime(2024, 5, 1, 12, 0, 0, 400000, tzinfo=dt.timezone.utc)


def past_clock():
    return WHEN + dt.timedelta(seconds=1)  # trigger time already reached: no waiting


def expected_binned(true_pixels: np.ndarray, factor: int) -> np.ndarray:
    h, w = true_pixels.shape
    blocks = true_pixels.reshape(h // factor, factor, w // factor, factor).astype(np.float64)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint16)


def test_missing_library_is_reported_clearly(hw_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    cam = Picamera2Camera(hw_config(), "on")
    with pytest.raises(DriverUnavailable, match="picamera2 not available"):
        cam.open()


def test_registry_resolves_the_driver():
    assert camera_driver_class("picamera2") is Picamera2Camera


def test_no_camera_attached(hw_config, fake_picamera2):
    fake_picamera2.ATTACHED = 0
    with pytest.raises(DriverUnavailable, match="no camera 0 attached"):
        Picamera2Camera(hw_config(), "on").open()


def test_camera_in_use_by_another_process(hw_config, fake_picamera2):
    first = Picamera2Camera(hw_config(), "on", clock=past_clock)
    first.open()
    try:
        with pytest.raises(DriverUnavailable, match="cannot open camera 0"):
            Picamera2Camera(hw_config(), "on").open()
    finally:
        first.close()


@pytest.mark.slow
@pytest.mark.parametrize("raw_format,platform", [("", "vc4"), ("SGBRG10_CSI2P", "vc4"), ("", "pisp")])
def test_raw_capture_unpacks_and_bins_exactly(hw_config, fake_picamera2, raw_format, platform):
    fake_picamera2.PLATFORM = platform
    cfg = hw_config({"hardware": {"raw_format": raw_format}, "camera": {"shutter_us": 100_000}})
    with Picamera2Camera(cfg, "off", clock=past_clock) as cam:
        fake = fake_picamera2.INSTANCES[-1]
        raw = fake.camera_configuration()["raw"]
        assert tuple(raw["size"]) == (2592, 1944)  # still configuration at sensor resolution
        if raw_format:
            assert raw["format"] == "SGBRG10_CSI2P" and raw["stride"] == 3264  # PyCam's packed rows
        assert cam.limits.shape == (486, 648)
        frame = cam.capture(WHEN)
        truth = fake_picamera2.TRUE_PIXELS[0]
    assert frame.pixels.dtype == np.uint16 and frame.pixels.shape == (486, 648)
    np.testing.assert_array_equal(frame.pixels, expected_binned(truth, 4))
    assert frame.pixels.max() <= 1023
    assert frame.band == "off"
    assert frame.time == WHEN.replace(microsecond=0)
    assert 0.93 * 100_000 <= frame.exposure_us <= 100_000  # the actual (line-quantised) exposure


def test_auto_exposure_off_and_controls_sent(hw_config, fake_picamera2):
    with Picamera2Camera(hw_config({"camera": {"shutter_us": 50_000, "analog_gain": 2.0}}), "on",
                         clock=past_clock) as cam:
        fake = fake_picamera2.INSTANCES[-1]
        sent = fake.camera_configuration()["controls"]
        assert sent["AeEnable"] is False and sent["ExposureTime"] == 50_000 and sent["AnalogueGain"] == 2.0
        assert sent["FrameDurationLimits"][1] >= 50_000  # frame long enough for the exposure
        assert cam.set_exposure(10**9) == 3066985  # clamped to the camera's own limit
        assert cam.set_gain(0.1) == 1.0
        last = fake.set_controls_calls[-2]
        assert last["ExposureTime"] == 3066985 and last["AeEnable"] is False


def test_capture_waits_for_the_new_exposure(hw_config, fake_picamera2):
    with Picamera2Camera(hw_config({"camera": {"shutter_us": 20_000}}), "on", clock=past_clock) as cam:
        cam.capture(WHEN)
        cam.set_exposure(400_000)
        frame = cam.capture(WHEN)  # controls arrive CONTROL_LATENCY frames late: older frames skipped
    assert 0.93 * 400_000 <= frame.exposure_us <= 400_000


def test_exposure_timeout_reports_actual_exposure(hw_config, fake_picamera2):
    cfg = hw_config({"camera": {"shutter_us": 20_000}, "hardware": {"settle_timeout_s": 0.0}})
    with Picamera2Camera(cfg, "on", clock=past_clock) as cam:
        cam.capture(WHEN)
        fake_picamera2.CONTROL_LATENCY = 50
        try:
            cam.set_exposure(400_000)
            frame = cam.capture(WHEN)
        finally:
            fake_picamera2.CONTROL_LATENCY = 2
    assert frame.exposure_us < 0.93 * 400_000  # no pretending: the name will carry what was used


def test_capture_waits_for_trigger_time(hw_config, fake_picamera2):
    now = [WHEN - dt.timedelta(seconds=2)]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += dt.timedelta(seconds=s)

    with Picamera2Camera(hw_config(), "on", clock=lambda: now[0], sleep=sleep) as cam:
        cam.capture(WHEN)
    assert now[0] >= WHEN and sum(slept) == pytest.approx(2.0)


def test_control_specs_come_from_the_camera(hw_config, fake_picamera2):
    with Picamera2Camera(hw_config(), "on", clock=past_clock) as cam:
        specs = cam.control_specs()
        assert specs["ExposureTime"] == {"min": 130, "max": 3066985, "default": 20000, "type": "int"}
        assert specs["AnalogueGain"]["max"] == 63.9375 and specs["AnalogueGain"]["type"] == "float"
        assert cam.apply_controls({"ExposureTime": 5000, "AnalogueGain": 4.0}) == {
            "ExposureTime": 5000, "AnalogueGain": 4.0}


def test_close_releases_camera_and_unopened_errors(hw_config, fake_picamera2):
    cam = Picamera2Camera(hw_config(), "on", clock=past_clock)
    with pytest.raises(DriverError, match="not open"):
        cam.capture(WHEN)
    cam.open()
    cam.close()
    assert not fake_picamera2.INSTANCES[-1].is_open
    cam.open()  # the camera is free again
    cam.close()


def test_compressed_raw_is_refused_with_advice(hw_config, fake_picamera2):
    fake_picamera2.PLATFORM = "pisp"
    with pytest.raises(DriverError, match="compressed raw format"):
        Picamera2Camera(hw_config({"hardware": {"raw_format": "SGBRG10_CSI2P"}}), "on").open()
    assert not fake_picamera2.INSTANCES[-1].is_open  # closed again after the failure


def test_unpack_packed_rows_by_hand():
    # two pixels rows of 4: values chosen to use all 10 bits
    values = np.array([[1023, 0, 512, 3], [1, 2, 1022, 700]], np.uint16)
    packed = np.zeros((2, 8), np.uint8)  # stride 8 > 5 used bytes
    for r in range(2):
        packed[r, :4] = values[r] >> 2
        packed[r, 4] = sum(int(values[r, i] & 3) << (2 * i) for i in range(4))
        packed[r, 5:] = 0xFF
    np.testing.assert_array_equal(unpack_raw(packed, "SGBRG10_CSI2P", 4, 2), values)


def test_bin_area_rounds():
    px = np.array([[0, 1], [1, 1]], np.uint16)
    assert bin_area(px, 2)[0, 0] == 1  # 0.75 rounds to 1
    assert bin_area(np.arange(16, dtype=np.uint16).reshape(4, 4), 2).tolist() == [[3, 5], [11, 13]]


@pytest.mark.slow
@pytest.mark.parametrize("model,shape,binning", [("imx477", (760, 1014), 4), ("imx296", (544, 728), 2)])
def test_pi5_other_sensors_unpack_their_bit_depth_exactly(hw_config, fake_picamera2, model, shape, binning):
    """Pi 5 (PiSP): unpacked raw arrives left-aligned in 16 bits; the profile's bit depth undoes it
    (IMX477: >> 4, 12-bit values) and its binning applies when [camera] binning is 0."""
    fake_picamera2.PLATFORM, fake_picamera2.ATTACHED = "pisp", 2
    fake_picamera2.MODELS[:] = [model, model]
    cfg = hw_config({"hardware": {"sensor": model}, "camera": {"shutter_us": 100_000, "binning": 0}})
    with Picamera2Camera(cfg, "on", camera_index=1, clock=past_clock) as cam:
        raw = fake_picamera2.INSTANCES[-1].camera_configuration()["raw"]
        assert raw["format"].endswith("16") and "COMP" not in raw["format"]
        assert cam.limits.shape == shape and cam.limits.max_dn == (4095 if model == "imx477" else 1023)
        frame = cam.capture(WHEN)
        truth = fake_picamera2.INSTANCES[-1].true_pixels
    np.testing.assert_array_equal(frame.pixels, expected_binned(truth, binning))
    if model == "imx477":
        assert frame.pixels.max() > 1023 and frame.pixels.min() >= 250   # 12 bits on a 256 DN black level
    assert cam.last_metadata["SensorTimestamp"] > 0 and cam.last_metadata["ExposureTime"] == frame.exposure_us


def test_pi5_noise_reduction_and_hdr_off_and_two_indices(hw_config, fake_picamera2):
    fake_picamera2.PLATFORM, fake_picamera2.ATTACHED = "pisp", 2
    cams = [Picamera2Camera(hw_config(), band, camera_index=i, clock=past_clock) for i, band in enumerate(("on", "off"))]
    try:
        for cam in cams:
            cam.open()
        fakes = fake_picamera2.INSTANCES
        assert [f.camera_idx for f in fakes] == [0, 1]
        for f in fakes:
            assert f.camera_configuration()["raw"]["format"] == "SGBRG16"   # SGBRG10 unpacked, left-aligned
            first = f.set_controls_calls[0]
            assert first["NoiseReductionMode"] == 0 and first["HdrMode"] == 0 and first["AeEnable"] is False
    finally:
        for cam in cams:
            cam.close()
    with pytest.raises(DriverUnavailable, match="no camera 2 attached"):
        Picamera2Camera(hw_config(), "on", camera_index=2).open()
