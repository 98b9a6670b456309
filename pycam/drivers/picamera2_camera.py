"""Raspberry Pi camera (OV5647, IMX477 or IMX296, Bayer filter removed) through Picamera2, raw path.

What this driver does with the library (``picamera2.Picamera2``):

* ``Picamera2(camera_num)`` (``camera_num`` indexes ``Picamera2.global_camera_info()``; a Pi 5
  carries two cameras, 0 and 1); ``sensor_resolution``, ``sensor_format``, ``camera_properties``
  (``Model``) and ``camera_controls`` (name -> ``(min, max, default)``) describe the sensor.
* ``create_still_configuration(main=..., raw={"format", "size"}, buffer_count=2, controls=...)``,
  ``configure(config)`` and ``camera_configuration()["raw"]`` (the format, size and stride
  the camera really delivers; libcamera may adjust the request).
* ``set_controls({"AeEnable": False, "ExposureTime": us, "AnalogueGain": g,
  "FrameDurationLimits": (lo, hi), "NoiseReductionMode": 0, "HdrMode": 0})``: auto exposure,
  noise reduction and HDR are always off (the last two only where advertised); PyCam's exposure
  control lives in the station.
* ``start()``, ``capture_request(flush=True)`` (frames whose exposure began after the call; older
  Picamera2 versions without ``flush`` fall back to ``capture_request()``),
  ``request.get_metadata()`` (``ExposureTime``, ``AnalogueGain``, ``SensorTimestamp`` in ns, kept
  as :attr:`Picamera2Camera.last_metadata` for the pair's skew), ``request.make_array("raw")``
  (uint8 ``(rows, stride)``), ``request.release()``, ``stop()``, ``close()``.

The sensor profile (``[hardware] sensor``, :mod:`pycam.formats.sensors`) gives the bit depth
(unless ``[hardware] raw_bit_depth`` is set), the binning (when ``[camera] binning`` is 0) and
the model the camera must report.  Raw data: packed ``*10_CSI2P`` (4 pixels in 5 bytes: four
high bytes then one byte of 2-bit remainders), unpacked formats (little-endian 16-bit words
holding ``bit_depth`` bits) and 16-bit left-aligned formats (Pi 5: ``SGBRG10`` is delivered as
``SGBRG16`` and shifted right by 6) are unpacked to 0..2^bits-1; compressed PiSP formats are
refused.  Frames are area-averaged ``binning`` x ``binning`` (OV5647: 2592x1944 -> 648x486).
The black level (IMX477: about 256 DN) is left in the data; dark frames carry it and the
processing subtracts it with the dark.

Exposure changes reach the sensor a few frames late: ``capture`` waits (up to
``[hardware] settle_timeout_s``, PyCam 1.5 s) for a frame whose reported exposure is within
[0.93 t, 1.01 t] of the request, then reports the exposure the sensor actually used.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any, Callable

import numpy as np

from pycam.config import Config
from pycam.drivers.base import (Capability, CameraDriver, CameraFrame, CameraLimits, DriverError, DriverUnavailable,
                                utc_seconds, wait_until)
from pycam.formats.sensors import SensorProfile, sensor_profile

#: PyCam's acceptance window for "the new exposure is in force" (fraction of the request).
SETTLE_LOW, SETTLE_HIGH = 0.93, 1.01


def _import_picamera2():
    try:
        from picamera2 import Picamera2  # noqa: PLC0415 - guarded optional import
    except Exception as exc:  # ImportError, or libcamera failing to load off a Pi
        raise DriverUnavailable(f"picamera2 not available: {exc}") from None
    return Picamera2


def raw_container_bits(fmt: str) -> int:
    """Bits per sample of a raw format name (``SGBRG10_CSI2P`` -> 10, ``SBGGR16`` -> 16)."""
    m = re.search(r"(\d+)", fmt)
    if not m:
        raise DriverError(f"picamera2: cannot read the bit depth of raw format {fmt!r}")
    return int(m.group(1))


def unpack_raw(raw: np.ndarray, fmt: str, width: int, height: int, bit_depth: int = 10) -> np.ndarray:
    """Turn a raw buffer ``(rows, stride)`` of uint8 into uint16 ``(height, width)`` sensor values.

    Handles packed 10-bit CSI-2 (``*_CSI2P``), unpacked little-endian 16-bit words holding
    ``bit_depth`` bits, and 16-bit left-aligned data (values shifted down to ``bit_depth``).
    """
    if "PISP_COMP" in fmt:
        raise DriverError(f"picamera2: compressed raw format {fmt!r} is not supported; "
                          "set [hardware] raw_format to an unpacked format (e.g. SGBRG16)")
    buf = np.asarray(raw)
    if buf.dtype != np.uint8:
        buf = buf.view(np.uint8)
    if buf.ndim == 1:
        buf = buf.reshape(height, -1)
    if buf.shape[0] < height:
        raise DriverError(f"picamera2: raw buffer has {buf.shape[0]} rows, expected {height}")
    bits = raw_container_bits(fmt)
    if fmt.endswith("_CSI2P"):
        if bits != 10:
            raise DriverError(f"picamera2: packed raw format {fmt!r} is not supported (only 10-bit)")
        if width % 4:
            raise DriverError(f"picamera2: packed raw width {width} is not a multiple of 4")
        used = width * 5 // 4
        if buf.shape[1] < used:
            raise DriverError(f"picamera2: raw stride {buf.shape[1]} shorter than {used} bytes")
        groups = buf[:height, :used].reshape(height, width // 4, 5)
        out = np.empty((height, width // 4, 4), np.uint16)
        low = groups[:, :, 4]
        for i in range(4):
            np.left_shift(groups[:, :, i], 2, out=out[:, :, i], dtype=np.uint16)
            out[:, :, i] |= (low >> (2 * i)) & 0x3
        return out.reshape(height, width)
    if bits > 8:
        used = width * 2
        if buf.shape[1] < used:
            raise DriverError(f"picamera2: raw stride {buf.shape[1]} shorter than {used} bytes")
        words = np.ascontiguousarray(buf[:height, :used]).view("<u2").reshape(height, width)
        if bits == 16 and bit_depth < 16:
            return (words >> (16 - bit_depth)).astype(np.uint16)
        return words.astype(np.uint16, copy=True)
    # 8-bit raw: scale to the requested depth so values keep their meaning
    return (buf[:height, :width].astype(np.uint16) << max(0, bit_depth - 8))


def bin_area(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``factor`` x ``factor`` blocks (rounded to the nearest integer), uint16.

    Sums strided views in uint32 (no reshaped copy of the whole frame): ~15 ms for 2592x1944.
    """
    if factor == 1:
        return np.ascontiguousarray(pixels, dtype=np.uint16)
    rows, cols = pixels.shape
    rows, cols = rows - rows % factor, cols - cols % factor
    px = pixels[:rows, :cols]
    columns = px[:, 0::factor].astype(np.uint32)
    for i in range(1, factor):
        columns += px[:, i::factor]
    total = columns[0::factor].copy()
    for i in range(1, factor):
        total += columns[i::factor]
    n = factor * factor
    total += n // 2
    total //= n
    return total.astype(np.uint16)


class Picamera2Camera(CameraDriver):
    """One UV camera on a Raspberry Pi, driven through Picamera2 (see the module docstring)."""

    capabilities = frozenset({Capability.RUNTIME_CONTROLS, Capability.CAMERA_INDEX, Capability.SENSOR_METADATA})

    def __init__(self, config: Config, band: str, *, camera_index: int | None = None,
                 clock: Callable[[], dt.datetime] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if band not in ("on", "off"):
            raise ValueError(f"bad band {band!r}: expected 'on' or 'off'")
        self.band = band
        self._hw = config["hardware"]
        self._cam_cfg = config["camera"]
        self.profile: SensorProfile = sensor_profile(self._hw["sensor"])
        self._binning = int(self._cam_cfg["binning"]) or self.profile.binning
        self._bit_depth = int(self._hw["raw_bit_depth"]) or self.profile.bit_depth
        self.camera_index = int(self._hw["camera_index"] if camera_index is None else camera_index)
        if not 0 <= self.camera_index <= 7:
            raise ValueError(f"bad camera index {camera_index!r}: expected 0-7")
        #: metadata of the last frame returned by ``capture`` (``SensorTimestamp``, ``ExposureTime``...)
        self.last_metadata: dict[str, Any] = {}
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._sleep = sleep
        self._picam: Any = None
        self._limits: CameraLimits | None = None
        self._raw: dict[str, Any] = {}
        self._exposure_us = int(self._cam_cfg["shutter_us"])
        self._gain = float(self._cam_cfg["analog_gain"])
        self._frame_duration_min = 0

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._picam is not None:
            return
        Picamera2 = _import_picamera2()
        index = self.camera_index
        try:
            cam = Picamera2(index)
        except IndexError:
            raise DriverUnavailable(f"picamera2: no camera {index} attached (is the ribbon cable in and "
                                    "the camera enabled?)") from None
        except Exception as exc:
            raise DriverUnavailable(f"picamera2: cannot open camera {index}: {exc}") from None
        try:
            self._configure(cam)
        except Exception:
            try:
                cam.close()
            except Exception:
                pass
            raise
        self._picam = cam

    def _configure(self, cam: Any) -> None:
        model = str(getattr(cam, "camera_properties", {}).get("Model", "")).lower()
        if model and not model.startswith(self.profile.name):  # variants: "imx296_mono", "imx477_noir"
            raise DriverError(f"picamera2: camera {self.camera_index} is a {model}, but [hardware] sensor is "
                              f"{self.profile.name!r}")
        width, height = (int(v) for v in cam.sensor_resolution)
        fmt = self._hw["raw_format"] or str(cam.sensor_format)
        if not self._hw["raw_format"] and fmt.endswith("_CSI2P"):
            fmt = fmt[: -len("_CSI2P")]  # unpacked: no bit unpacking needed on the Pi
        controls = cam.camera_controls
        for name in ("ExposureTime", "AnalogueGain"):
            if name not in controls:
                raise DriverError(f"picamera2: camera does not advertise the {name} control")
        exp_min, exp_max, _ = controls["ExposureTime"]
        gain_min, gain_max, _ = controls["AnalogueGain"]
        self._frame_duration_min = int(controls.get("FrameDurationLimits", (0, 0, 0))[0] or 0)
        self._exposure_us = int(min(max(self._exposure_us, exp_min), exp_max))
        self._gain = float(min(max(self._gain, gain_min), gain_max))
        try:
            config = cam.create_still_configuration(
                main={"size": (width, height)}, raw={"format": fmt, "size": (width, height)}, buffer_count=2,
                controls=self._control_values(self._exposure_us, self._gain, controls))
            cam.configure(config)
            raw = dict(cam.camera_configuration()["raw"])
        except DriverError:
            raise
        except Exception as exc:
            raise DriverError(f"picamera2: cannot configure raw {fmt} {width}x{height}: {exc}") from None
        r_w, r_h = (int(v) for v in raw["size"])
        if (r_w, r_h) != (width, height):
            raise DriverError(f"picamera2: camera gave raw size {r_w}x{r_h}, need the full sensor "
                              f"{width}x{height}")
        unpack_raw(np.zeros((1, int(raw["stride"])), np.uint8), str(raw["format"]), r_w, 1,
                   self._bit_depth)  # refuses unsupported formats now, not at capture
        self._raw = {"format": str(raw["format"]), "width": r_w, "height": r_h, "stride": int(raw["stride"])}
        self._limits = CameraLimits(
            min_shutter_us=int(exp_min), max_shutter_us=int(exp_max), min_gain=float(gain_min),
            max_gain=float(gain_max), shape=(r_h // self._binning, r_w // self._binning),
            max_dn=(1 << self._bit_depth) - 1)
        cam.start()

    def _control_values(self, exposure_us: int, gain: float, controls: dict) -> dict:
        values: dict[str, Any] = {"ExposureTime": int(exposure_us), "AnalogueGain": float(gain)}
        for name in ("AeEnable", "NoiseReductionMode", "HdrMode"):  # False / 0: off
            if name in controls:
                values[name] = False if name == "AeEnable" else 0
        if "FrameDurationLimits" in controls:
            lo, hi, _ = controls["FrameDurationLimits"]
            frame = int(min(max(exposure_us + 1000, lo), hi))
            values["FrameDurationLimits"] = (int(lo), frame)
        return values

    def close(self) -> None:
        cam, self._picam = self._picam, None
        if cam is None:
            return
        try:
            cam.stop()
        finally:
            cam.close()

    # -- settings --------------------------------------------------------------------------
    def _need_open(self) -> Any:
        if self._picam is None:
            raise DriverError("picamera2: camera is not open")
        return self._picam

    @property
    def limits(self) -> CameraLimits:
        if self._limits is None:
            raise DriverError("picamera2: camera is not open")
        return self._limits

    def set_exposure(self, shutter_us: int) -> int:
        cam = self._need_open()
        lim = self.limits
        value = int(min(max(int(shutter_us), lim.min_shutter_us), lim.max_shutter_us))
        try:
            cam.set_controls(self._control_values(value, self._gain, cam.camera_controls))
        except Exception as exc:
            raise DriverError(f"picamera2: cannot set ExposureTime={value}: {exc}") from None
        self._exposure_us = value
        return value

    def set_gain(self, gain: float) -> float:
        cam = self._need_open()
        lim = self.limits
        value = float(min(max(float(gain), lim.min_gain), lim.max_gain))
        try:
            cam.set_controls({"AnalogueGain": value})
        except Exception as exc:
            raise DriverError(f"picamera2: cannot set AnalogueGain={value}: {exc}") from None
        self._gain = value
        return value

    def control_specs(self) -> dict[str, dict[str, Any]]:
        """The runtime-configurable controls with the camera's own min, max, default and type."""
        cam = self._need_open()
        specs = {}
        for name, kind in (("ExposureTime", "int"), ("AnalogueGain", "float")):
            lo, hi, default = cam.camera_controls[name]
            cast = int if kind == "int" else float
            specs[name] = {"min": cast(lo), "max": cast(hi),
                           "default": cast(default) if default is not None else cast(lo), "type": kind}
        return specs

    def apply_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        """Apply validated runtime controls; returns what is now in force."""
        applied: dict[str, Any] = {}
        if "ExposureTime" in values:
            applied["ExposureTime"] = self.set_exposure(int(values["ExposureTime"]))
        if "AnalogueGain" in values:
            applied["AnalogueGain"] = self.set_gain(float(values["AnalogueGain"]))
        return applied

    # -- capture ---------------------------------------------------------------------------
    def _next_request(self, cam: Any, flush: bool) -> Any:
        if flush:
            try:
                return cam.capture_request(flush=True)
            except TypeError:  # Picamera2 before flush= existed
                pass
        return cam.capture_request()

    def capture(self, when: dt.datetime) -> CameraFrame:
        cam = self._need_open()
        wait_until(when, self._clock, self._sleep)
        wanted = self._exposure_us
        started = time.monotonic()
        flush = True
        while True:
            try:
                request = self._next_request(cam, flush)
            except Exception as exc:
                raise DriverError(f"picamera2: capture failed: {exc}") from None
            flush = False
            try:
                meta = request.get_metadata()
                exposure = int(meta.get("ExposureTime", 0))
                settled = SETTLE_LOW * wanted <= exposure <= SETTLE_HIGH * wanted
                if settled or time.monotonic() - started >= float(self._hw["settle_timeout_s"]):
                    raw = request.make_array("raw")
                    gain = float(meta.get("AnalogueGain", self._gain))
                    self.last_metadata = dict(meta)
                    break
            finally:
                request.release()
        r = self._raw
        pixels = unpack_raw(raw, r["format"], r["width"], r["height"], self._bit_depth)
        pixels = bin_area(pixels, self._binning)
        return CameraFrame(pixels=pixels, time=utc_seconds(when), exposure_us=exposure,
                           gain=gain, band=self.band)
