"""The camera service (``pycam camera --band on|off``): camera A (``CM1``, on-band, fltrA) or
camera B (``CM2``, off-band, fltrB) behind the master.

Keys handled (see pycam.protocol.commands): SSA/SSB (shutter, us; switches auto exposure
off), ATA/ATB (auto exposure), FRC (frame rate), SMN/SMX (saturation band), PXC (brightest
pixels averaged), RWC (rows checked), TPA/TPB (one Test/Dark/Clear/<N>ppmm frame), DKC (dark
set: one Dark at every shutter value of the auto-exposure list), STC/SPC (start/stop
continuous capture), RSC (re-open the driver), LOG, IDN, EXT, RST.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from pycam.config import Config
from pycam.drivers.base import CameraDriver, CameraFrame
from pycam.formats.names import ImageName
from pycam.protocol import commands as vocab
from pycam.drivers import exposure
from pycam.station.device_service import DeviceService


def _pycam_shutter_list_us() -> list[int]:
    """PyCam's 40 shutter speeds, 1 ms - 1 s (pycam_compat.md section 6)."""
    ms = ([x / 2 for x in range(2, 10)] + list(range(5, 10)) + list(range(10, 50, 5)) + list(range(50, 100, 10))
          + list(range(100, 500, 50)) + list(range(500, 1000, 100)) + [1000])
    return [int(round(v * 1000)) for v in ms]


class CameraService(DeviceService):
    kind = "camera"
    saturation_keys = ("SMN", "SMX")
    start_key, stop_key, dark_key, restart_key, framerate_key = "STC", "SPC", "DKC", "RSC", "FRC"

    def __init__(self, config: Config, band: str, driver: CameraDriver, *, spool_dir: Path | None = None,
                 framerate: float | None = None) -> None:
        if band not in vocab.BAND_DEVICE:
            raise ValueError(f"bad band {band!r}: expected 'on' (camera A) or 'off' (camera B)")
        self.band = band
        self.device = vocab.BAND_DEVICE[band]
        letter = "A" if band == "on" else "B"
        self.shutter_key, self.auto_key, self.capture_key = f"SS{letter}", f"AT{letter}", f"TP{letter}"
        self.exposure_key = self.shutter_key
        self.gain_key = f"AG{letter}"
        self.driver = driver
        cam = config["camera"]
        self.shutter_us = cam["shutter_us"]
        self.gain = cam["analog_gain"]
        self.auto_exposure = cam["auto_exposure"]
        self.saturation_rows = cam["saturation_rows"]
        super().__init__(config, spool_dir=spool_dir, framerate=framerate)

    @property
    def last_pixels(self) -> np.ndarray | None:
        """The pixels of the last Plume frame (auto exposure measures them)."""
        return None if self.last_frame is None else self.last_frame.pixels

    @property
    def exposure(self) -> int:
        return self.shutter_us

    @exposure.setter
    def exposure(self, value: int) -> None:
        self.shutter_us = value

    # ------------------------------------------------------------------------------- driver
    def open_driver(self) -> None:
        self.driver.open()
        self.shutter_us = self.driver.set_exposure(self.shutter_us)
        self.gain = self.driver.set_gain(self.gain)

    def set_driver_exposure(self, value: int) -> int:
        return self.driver.set_exposure(value)

    # ----------------------------------------------------------------------------- settings
    def settings(self) -> dict[str, Any]:
        return {"IDN": self.device, "band": self.band, self.shutter_key: self.shutter_us,
                self.auto_key: self.auto_exposure, "FRC": self.framerate, "SMN": self.min_saturation,
                "SMX": self.max_saturation, "PXC": self.saturation_pixels, "RWC": self.saturation_rows,
                "gain": self.gain, self.gain_key: self.gain, "acquiring": self.acquiring,
                "backlog": self.link.backlog}

    def apply_setting(self, key: str, value: Any) -> Any:
        if key == self.shutter_key:
            self.auto_exposure = False
            self.shutter_us = self.driver.set_exposure(value)
            return self.shutter_us
        if key == self.auto_key:
            self.auto_exposure = bool(value)
            return self.auto_exposure
        if key == self.gain_key:
            self.gain = self.driver.set_gain(float(value))
            return self.gain
        if key == "PXC":
            self.saturation_pixels = value
            return value
        if key == "RWC":
            self.saturation_rows = value
            return value
        return super().apply_setting(key, value)

    # ------------------------------------------------------------------------------ capture
    def frame_name(self, frame: CameraFrame, when: dt.datetime, frame_type: str) -> ImageName:
        return ImageName(time=when, band=self.band, gain=int(round(frame.gain)), exposure_us=int(frame.exposure_us),
                         frame_type=frame_type)

    def spool_frame(self, name: ImageName, frame: CameraFrame) -> None:
        # announced before the spool write: the link sends the frame from memory while it is
        # written and fsynced here (it stays pending in the spool until the master's Ack)
        self.spool.put_image(name, frame.pixels, announce=self.spooled)

    def next_exposure(self, frame: CameraFrame) -> exposure.ExposureDecision:
        """Auto exposure (ATA/ATB), see drivers/exposure.py."""
        limits = self.driver.limits
        return exposure.next_camera_shutter(
            frame.pixels, self.shutter_us, min_saturation=self.min_saturation, max_saturation=self.max_saturation,
            pixels=self.saturation_pixels, rows=self.saturation_rows, min_shutter_us=limits.min_shutter_us,
            max_shutter_us=limits.max_shutter_us, max_dn=limits.max_dn)

    def dark_exposures(self) -> list[int]:
        """The shutter speeds of a dark set (PyCam's list)."""
        return _pycam_shutter_list_us()
